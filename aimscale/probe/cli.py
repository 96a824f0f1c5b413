"""`aimscale probe RUN_DIR [options]`: frozen-trunk probes of a pre-trained run.

Examples:
  aimscale probe runs/x                              # attentive_last + linear_last
  aimscale probe runs/x --blocks all-windows         # layer sweep: <kind>_blocks<s>-<e>.json
  aimscale probe runs/x --fractions 0.25,0.5,1.0     # along training: <kind>_last_step<k>.json
  aimscale probe runs/x --kind lora --lr 1e-3 --wd 0 # LoRA fine-tuning (rank --lora-rank)
  aimscale probe runs/x --features pixels            # baseline: pixels_<kind>_last.json
  torchrun --nproc_per_node=2 -m aimscale probe runs/x  # the trunk's work shared by 2 ranks
Results go to RUN_DIR/probe/<name>.json; unset options take the ProbeConfig defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _limit(text: str) -> int | str:
    if text in ("all", "none", "null"):
        return "all"  # becomes None (the whole split) in `run`
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of images or 'all', got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n", 2)[2]
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by training")
    parser.add_argument("--checkpoint", help="last (default) or a training step")
    parser.add_argument("--fractions", type=_floats, help="probe the kept checkpoints nearest "
                        "to these fractions of training, e.g. 0.25,0.5,1.0")  # fmt: skip
    parser.add_argument("--dataset", help="fashion-mnist (default) | mnist | synthetic | "
                        "image-folder:PATH (PATH/train, PATH/val)")  # fmt: skip
    parser.add_argument("--blocks", help="last (default) | best | all-windows | START-END "
                        "(0-based, inclusive)")  # fmt: skip
    parser.add_argument("--window-size", type=int, help="blocks averaged per window "
                        "(default: min(6, max(1, round(depth/4))))")  # fmt: skip
    parser.add_argument("--kind", default="both", choices=["attentive", "linear", "both", "lora"])
    parser.add_argument("--name", help="result name (prefix when there are several results)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=_floats, dest="lrs", help="learning-rate grid, e.g. 1e-3,1e-2")
    parser.add_argument("--wd", type=_floats, dest="weight_decays", help="weight-decay grid")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--val-fraction", type=float)
    parser.add_argument("--limit-train", type=_limit, help="training images (or 'all')")
    parser.add_argument("--limit-test", type=_limit, help="test images (or 'all')")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--lora-rank", type=int)
    parser.add_argument("--lora-epochs", type=int)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--features", choices=["trunk", "pixels", "untrained"],
                        help="trunk (default: the run's checkpoint) | untrained (its trunk at "
                        "step 0) | pixels (the patches, no trunk): baselines of the same probe")
    parser.add_argument(
        "--cache",
        choices=["auto", "disk", "none"],
        help="features between epochs: auto (default: a temporary fp16 store) | "
        "disk (kept in RUN_DIR/probe/cache/) | none (trunk every epoch)",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep results already in RUN_DIR/probe/ made by the same request",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


FIELDS = (
    "checkpoint", "fractions", "dataset", "blocks", "window_size", "kind", "name", "epochs",
    "lrs", "weight_decays", "batch_size", "val_fraction", "limit_train", "limit_test", "seed",
    "lora_rank", "lora_epochs", "device", "cache", "features",
)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from aimscale.probe.config import ProbeError, probe_config
    from aimscale.probe.run import probe_run

    given = {key: getattr(args, key) for key in FIELDS if getattr(args, key) is not None}
    for key in ("limit_train", "limit_test"):
        if given.get(key) == "all":
            given[key] = None
    try:
        # probe_run joins the job's ranks when started by torchrun or as a multi-task job
        results = probe_run(args.run_dir, probe_config(given), skip_existing=args.skip_existing)
    except ProbeError as err:
        print(f"aimscale probe: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # rank 0 reports
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    print(f"{'name':<32} {'step':>7} {'blocks':>7} {'top1':>7} {'top5':>7} {'val':>7} "
          f"{'lr':>7} {'wd':>5} {'time_s':>7}")  # fmt: skip
    for r in results:
        blocks = f"{r['blocks'][0]}-{r['blocks'][1]}" if r["blocks"] else "-"
        print(
            f"{r['name']:<32} {r['step']:>7} {blocks:>7} {r['top1']:>7.4f} {r['top5']:>7.4f} "
            f"{r['val_accuracy']:>7.4f} {r['hparams']['lr']:>7.0e} "
            f"{r['hparams']['weight_decay']:>5g} {r['wall_time_s']:>7.1f}"
        )
    print(f"results in {args.run_dir}/probe/")
    return 0
