"""`aimscale next SWEEP_DIR --budget FLOPS [--target-flops C] [-o SPEC]`: the next rung's spec.

From the sweep's collected runs (`collect/runs.csv`, written by `aimscale collect`): the joint
law L(N, D) = E + A/N^α + B/D^β (analysis.fit_joint, bootstrap intervals) and its
compute-optimal allocation (analysis.frontier). The budget buys `--runs` runs (default 3) at
budget / runs FLOPs each, at N_opt of that compute × 2^i around the optimum (i = -1, 0, 1 for
three), so the next rung brackets the optimum instead of betting on it. Shapes keep the largest
run's depth and head dimension (width a multiple of it), and D (images) = C / (k·N) with k the
sweep's own training FLOPs per trunk parameter per image (`flops_per_image / trunk_params`).

The prediction at `--target-flops` (default: the budget) — N_opt, D_opt, the loss and its
interval, and, where the sweep has probes, the top-1 accuracy through loss → accuracy
(analysis.correlate.two_step) — goes into the spec as comments, with each run's own predicted
loss, so the spec stays one that `aimscale plan` and `launch` read unchanged.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="a collected sweep (collect/runs.csv, sweep.json)")
    parser.add_argument("--budget", type=float, required=True, help="FLOPs the next rung may use")
    parser.add_argument("--target-flops", type=float,
                        help="compute at which to predict loss and accuracy (default: budget)")
    parser.add_argument("--runs", type=int, default=3, help="runs the budget is split into")
    parser.add_argument("-o", "--output", help="spec to write (default SWEEP_DIR/next.yaml)")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for intervals")


def width_for(params: float, depth: int, head_dim: int, patch: int, channels: int) -> int:
    """The multiple of `head_dim` (and of 4) whose trunk is nearest `params` on a log scale."""
    from analysis.frontier import trunk_params

    step = math.lcm(head_dim, 4)
    exact = math.sqrt(params / (12 * depth))
    near = int(exact // step) * step
    candidates = [w for w in (near - step, near, near + step, near + 2 * step) if w >= step]
    return min(candidates or [step], key=lambda w: abs(math.log(
        trunk_params(w, depth, patch, channels) / params)))


def _probe_column(runs) -> str | None:
    cols = [c for c in runs.columns if c.startswith("probe.") and c.endswith(".top1")]
    cols = [c for c in cols if runs[c].notna().sum() >= 3]
    if not cols:
        return None
    # prefer attentive probes (the paper's protocol), then the most complete column
    return max(cols, key=lambda c: ("attentive" in c, runs[c].notna().sum(), c))


def _base_model(spec: dict):
    """The model of the sweep's base (its preset and settings), or the default model."""
    from aimscale.config import ConfigError, compose
    from aimscale.model.config import ModelConfig

    if not spec.get("base"):
        return ModelConfig()
    try:
        return compose(list(spec.get("overrides") or []), base=spec["base"]).model
    except ConfigError:
        return ModelConfig()


def _ci(lo, hi) -> list[float] | None:
    return None if lo is None else [float(lo[0]), float(hi[0])]


def _fmt_ci(ci) -> str:
    return "" if ci is None else f" [{ci[0]:.4g}, {ci[1]:.4g}]"


def next_rung(sweep_dir: Path, budget: float, target: float | None = None, n_runs: int = 3,
              bootstrap: int = 200) -> dict:
    """The next rung: {"spec": dict, "comments": [lines], "target": {...}, "runs": [...]}."""
    from aimscale.flops import flops_per_image
    from analysis.correlate import correlate, two_step
    from analysis.data import load_table
    from analysis.fit_joint import fit_joint
    from analysis.frontier import allocation, trunk_params

    target = budget if target is None else target
    runs = load_table(sweep_dir / "collect" / "runs.csv")
    if "status" in runs:
        runs = runs[runs["status"] == "done"]
    loss_col = "final_val_loss"
    if loss_col not in runs or runs[loss_col].isna().any():
        loss_col = "final_loss"
    n = runs["trunk_params"].to_numpy(float)
    fit = fit_joint(n, runs["images_seen"].to_numpy(float), runs[loss_col].to_numpy(float),
                    bootstrap=bootstrap, seed=0)
    k = float((runs["flops_per_image"] / runs["trunk_params"]).median())
    at = allocation(fit, [target], k)
    result_target = {"flops": target, "n_opt": float(at["n_opt"][0]),
                     "d_opt": float(at["d_opt"][0]), "loss": float(at["loss"][0]),
                     "loss_ci": _ci(at["loss_lo"], at["loss_hi"])}
    probe = _probe_column(runs)
    if probe is not None:
        keep = runs[probe].notna()
        corr = correlate(runs.loc[keep, loss_col], runs.loc[keep, probe], bootstrap=bootstrap)
        acc = two_step(fit, corr, [result_target["n_opt"]], [result_target["d_opt"]])
        result_target.update(probe=probe, accuracy=float(acc["accuracy"][0]),
                             accuracy_ci=_ci(acc["accuracy_lo"], acc["accuracy_hi"]))

    largest = runs.loc[runs["trunk_params"].idxmax()]
    depth = int(largest["model.depth"])
    head_dim = int(largest["model.width"]) // int(largest.get("model.heads", 1) or 1)
    manifest_path = sweep_dir / "sweep.json"
    manifest = yaml.safe_load(manifest_path.read_text()) if manifest_path.exists() else None
    spec = dict((manifest or {}).get("spec") or {})
    model = _base_model(spec)
    patch = int(largest.get("model.patch_size", model.patch_size))
    channels = int(largest.get("model.channels", model.channels))
    batch = int((spec.get("base") or {}).get("train", {}).get("batch_size") or 0) or None
    if batch is None and "train.batch_size" in runs:
        batch = int(largest["train.batch_size"])
    batch = batch or 64  # TrainConfig's default
    per_run = budget / n_runs
    optimum = float(allocation(fit, [per_run], k)["n_opt"][0])
    variants, planned = {}, []
    for i in range(n_runs):
        factor = 2.0 ** (i - (n_runs - 1) / 2)
        width = width_for(optimum * factor, depth, head_dim, patch, channels)
        params = int(trunk_params(width, depth, patch, channels))
        # the planner's FLOPs of this shape (head and attention included): the budget is real
        shape = replace(model, width=width, depth=depth, heads=width // head_dim)
        steps = max(1, int(per_run / (flops_per_image(shape) * batch)))
        images = steps * batch
        overrides = [f"model.width={width}", f"model.depth={depth}",
                     f"model.heads={width // head_dim}", f"train.steps={steps}"]
        if "data.num_images" in runs:  # sweeps that vary the distinct images seen
            overrides.append(f"data.num_images={images}")
        loss, lo, hi = fit.predict_interval([params], [images])
        name = f"w{width}"
        variants[name] = overrides
        planned.append({"name": name, "width": width, "depth": depth, "params": params,
                        "images": images, "flops": flops_per_image(shape) * images,
                        "loss": float(loss[0]), "loss_ci": _ci(lo, hi)})
    for key in ("grid", "zip", "variants"):
        spec.pop(key, None)
    spec["name"] = f"{spec.get('name') or sweep_dir.name}_next"
    spec["sweep_dir"] = str(sweep_dir.parent / spec["name"])
    spec["variants"] = variants

    p = fit.params
    t = result_target
    comments = [
        f"next rung of {sweep_dir} (aimscale next): budget {budget:.3g} FLOPs, {n_runs} runs",
        f"joint law from {len(runs)} runs ({loss_col}): E={p['E']:.4g} A={p['A']:.4g} "
        f"alpha={p['alpha']:.4g} B={p['B']:.4g} beta={p['beta']:.4g}; "
        f"k={k:.4g} FLOPs per parameter per image",
        f"target {target:.3g} FLOPs: N_opt={t['n_opt']:.3g} D_opt={t['d_opt']:.3g} images, "
        f"predicted loss {t['loss']:.4g}{_fmt_ci(t['loss_ci'])}",
    ]
    if "accuracy" in t:
        comments.append(f"  {t['probe']} predicted {t['accuracy']:.4g}{_fmt_ci(t['accuracy_ci'])}")
    comments += [f"  {r['name']}: N={r['params']:.3g} D={r['images']:.3g} images "
                 f"C={r['flops']:.3g} predicted loss {r['loss']:.4g}{_fmt_ci(r['loss_ci'])}"
                 for r in planned]
    return {"spec": spec, "comments": comments, "target": t, "runs": planned}


def run(args: argparse.Namespace) -> int:
    from aimscale.atomic import atomic_write_text
    from analysis.errors import AnalysisError

    sweep_dir = Path(args.sweep_dir)
    problems = []
    if not (sweep_dir / "collect" / "runs.csv").exists():
        problems.append(f"{sweep_dir}/collect/runs.csv not found; run `aimscale collect "
                        f"{sweep_dir}` first")
    if not args.budget > 0 or (args.target_flops is not None and not args.target_flops > 0):
        problems.append("--budget and --target-flops must be positive FLOP counts")
    if args.runs < 1 or args.bootstrap < 0:
        problems.append("--runs must be >= 1 and --bootstrap >= 0")
    if problems:
        print("aimscale next: " + "; ".join(problems), file=sys.stderr)
        return 2
    try:
        out = next_rung(sweep_dir, args.budget, args.target_flops, args.runs, args.bootstrap)
    except (AnalysisError, KeyError) as err:
        print(f"aimscale next: cannot fit the runs of {sweep_dir}: {err}", file=sys.stderr)
        return 2
    path = Path(args.output or sweep_dir / "next.yaml")
    text = "".join(f"# {line}\n" for line in out["comments"])
    atomic_write_text(path, text + yaml.safe_dump(out["spec"], sort_keys=False))
    print(f"{text}wrote {path}; check it with `aimscale plan {path}`")
    return 0
