"""Frozen-trunk features: load a checkpoint's trunk and run it over a batch of images.

One pass of the trunk over a batch yields the features of every requested block window (the
trunk returns each block's raw output; a window is their element-wise mean, exactly as
`Trunk.features` computes it), with bidirectional attention; bf16 autocast on a GPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aimscale.probe.windows import Window


def load_trunk(run_dir: Path, step: int, device: torch.device) -> torch.nn.Module:
    """The frozen trunk (eval mode, no gradients) of `run_dir`'s checkpoint at `step`."""
    from aimscale.model import AIM
    from aimscale.train.checkpoint import load_model_weights

    run_cfg, state = load_model_weights(run_dir, step)
    model = AIM(run_cfg.model)
    model.load_state_dict(state)
    trunk = model.trunk.to(device).eval()
    trunk.requires_grad_(False)
    return trunk


def autocast(device: torch.device):
    """bf16 autocast on a GPU (LayerNorm and softmax stay float32 under autocast), none on CPU
    (float32)."""
    import contextlib

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def batch_windows(
    trunk: torch.nn.Module, images: torch.Tensor, windows: list[Window]
) -> torch.Tensor:
    """Features of one batch for every window, from one trunk pass: float32 [W, B, K, width]
    on the trunk's device."""
    device = next(trunk.parameters()).device
    upto = max(w.end for w in windows) + 1
    with autocast(device):
        blocks = trunk.run_blocks(trunk.embed(images.to(device)), upto=upto)  # bidirectional
        feats = [torch.stack(blocks[w.start : w.end + 1]).float().mean(0) for w in windows]
    return torch.stack(feats)


def extract_windows(
    trunk: torch.nn.Module,
    images: torch.Tensor,
    windows: list[Window],
    batch_size: int = 256,
) -> list[torch.Tensor]:
    """Features [N, K, width] of every window of in-memory `images` (LoRA's small sets, the
    benchmark); the probe itself streams batches through `batch_windows`."""
    parts = [batch_windows(trunk, chunk, windows) for chunk in images.split(batch_size)]
    joined = torch.cat(parts, dim=1)
    return list(joined.unbind(0))
