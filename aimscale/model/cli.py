"""`aimscale model PRESET [overrides] [--json]`: shape, parameter counts and FLOPs of a model.

Everything is computed in closed form from the config, without allocating weights, so even the
7B preset answers instantly (and without importing torch).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="model preset, e.g. aim-tiny, aim-600m, aim-7b")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra-style overrides, e.g. model.depth=12 model.width=512"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def describe(model_cfg) -> dict:
    """The facts `aimscale model` prints, as a JSON-ready dict."""
    from aimscale.flops import flops_per_image, forward_flops, param_counts

    counts = param_counts(model_cfg)
    fwd = forward_flops(model_cfg)
    return {
        "name": model_cfg.name,
        "image_size": model_cfg.image_size,
        "patch_size": model_cfg.patch_size,
        "channels": model_cfg.channels,
        "num_patches": model_cfg.num_patches,
        "width": model_cfg.width,
        "depth": model_cfg.depth,
        "heads": model_cfg.heads,
        "head_dim": model_cfg.width // model_cfg.heads,
        "attention": model_cfg.attention,
        "order": model_cfg.order,
        "objective": model_cfg.objective,
        "head": model_cfg.head,
        "head_width": model_cfg.head_width,
        "head_depth": model_cfg.head_depth,
        "head_block": model_cfg.head_block,
        "target_var": model_cfg.target_var,
        "trunk_params": counts.trunk,
        "head_params": counts.head,
        "total_params": counts.total,
        "forward_flops_per_image": fwd.total,
        "head_forward_flops_per_image": fwd.head,
        "flops_per_image": flops_per_image(model_cfg),
    }


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _count(n: int) -> str:
    return f"{n:,} ({_human(n)})"


def run(args: argparse.Namespace) -> int:
    from aimscale.config import ConfigError, compose

    try:
        cfg = compose([f"model={args.preset}", *args.overrides]).model
    except ConfigError as err:
        print(f"aimscale model: {err}", file=sys.stderr)
        return 2
    info = describe(cfg)
    if args.json:
        print(json.dumps(info))
        return 0
    i = info
    head = (
        i["head"]
        if i["head"] == "none"
        else (
            f"{i['head']} (width {i['head_width']}, depth {i['head_depth']}"
            + (f", {i['head_block']} blocks)" if i["head"] == "mlp" else ")")
        )
    )
    rows = [
        ("model", i["name"]),
        ("image", f"{i['channels']}x{i['image_size']}x{i['image_size']}, patch {i['patch_size']}"),
        ("tokens", str(i["num_patches"])),
        ("trunk", f"width {i['width']}, depth {i['depth']}, heads {i['heads']}"),
        ("pre-training", f"{i['attention']} attention, {i['order']} order, {i['objective']}"
         + (f" ({i['target_var']} variance)" if i["objective"] != "pixel_raw" else "")),
        ("head", head),
        ("trunk params", _count(i["trunk_params"])),
        ("head params", _count(i["head_params"])),
        ("forward FLOPs/image", _count(i["forward_flops_per_image"])),
        ("train FLOPs/image", _count(i["flops_per_image"]) + " (fwd+bwd = 3x fwd)"),
    ]
    pad = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{pad}}  {value}")
    return 0
