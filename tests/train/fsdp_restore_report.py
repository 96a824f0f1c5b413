"""Run under torchrun by test_fsdp (`fsdp_restore_report.py RUN_DIR STEP REPORT`): restore the
`.pt` checkpoint of a (DDP or 1-rank) run into an FSDP-sharded model and optimiser on every rank,
gather the full state back, and write (rank 0) the largest difference to the checkpoint."""

import json
import sys

from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

from aimscale.config import from_yaml
from aimscale.model import AIM
from aimscale.train import distributed
from aimscale.train.checkpoint import checkpoint_path, load_checkpoint, restore_checkpoint
from aimscale.train.fsdp import is_sharded, shard_model
from aimscale.train.optim import build_optimizer

if __name__ == "__main__":
    run_dir, step, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cfg = from_yaml(f"{run_dir}/config.yaml")
    env = distributed.setup("cpu")
    try:
        model = shard_model(AIM(cfg.model), env, "fp32")
        optimizer = build_optimizer(model, cfg.optim)
        path = checkpoint_path(run_dir, step)
        state = restore_checkpoint(path, model, optimizer)
        full_model, full_optim = get_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True))
        if env.is_main:
            saved = load_checkpoint(path)
            plain = AIM(cfg.model)  # the .pt optimiser state is keyed by index in group order
            by_param = {p: n for n, p in plain.named_parameters()}
            groups = build_optimizer(plain, cfg.optim).param_groups
            names = [by_param[p] for group in groups for p in group["params"]]
            diff = max((full_model[n] - saved["model"][n]).abs().max().item() for n in names)
            moments = max(
                (full_optim["state"][n][key] - saved["optimizer"]["state"][i][key]).abs().max()
                .item() for i, n in enumerate(names) for key in ("exp_avg", "exp_avg_sq"))
            result = {"sharded": is_sharded(model), "step": state["step"], "suffix": path.suffix,
                      "weights": diff, "moments": moments}
            with open(report, "w") as handle:
                json.dump(result, handle)
        del model, optimizer, full_model, full_optim
    finally:
        distributed.teardown(env)
