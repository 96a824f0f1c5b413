"""Frozen-trunk features: load a checkpoint's trunk and run it over a batch of images.

One pass of the trunk over a batch yields the features of every requested block window (the
trunk returns each block's raw output; a window is their element-wise mean, exactly as
`Trunk.features` computes it), with bidirectional attention; bf16 autocast on a GPU.

Baselines (`ProbeConfig.features`), to show what pre-training adds:

- `untrained`: the run's trunk at step 0 — `AIM(run's model config)` built right after
  `torch.manual_seed(train.seed)`, exactly as training builds it (`Trainer._build`).
- `pixels`: no trunk (`PixelPatches`). The tokens are the image's patches, each the C·p·p
  values the patch embedding would see (normalised like pre-training, not per patch: the
  per-patch normalisation of the targets would drop each patch's brightness and contrast,
  which is information). The attentive probe pools these tokens; it has no positions (none are
  added: any encoding would be a hand-made feature), so it sees a bag of patches. The linear
  probe gets the flattened patches, i.e. every pixel (mean-pooling patches would keep only
  the average patch); this is the classic "linear classifier on raw pixels".
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


def build_untrained_trunk(model_cfg, seed: int, device: torch.device) -> torch.nn.Module:
    """The frozen trunk of a run at step 0: built as training builds it (seed, then the whole
    `AIM`, since μP rescales the init after the head exists); the global RNG is left as it was."""
    from aimscale.model import AIM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AIM(model_cfg)
    trunk = model.trunk.to(device).eval()
    trunk.requires_grad_(False)
    return trunk


class PixelPatches(torch.nn.Module):
    """The no-trunk baseline: images [B, C, H, W] -> their patches [B, K, C·p·p] (raster
    order, values (C, p, p) as `patchify`); a buffer only tells the device."""

    def __init__(self, patch_size: int, device: torch.device):
        super().__init__()
        self.patch_size = patch_size
        self.register_buffer("anchor", torch.zeros((), device=device), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from aimscale.model.objectives import patchify

        return patchify(images.to(self.anchor.device).float(), self.patch_size)


def _device_of(module: torch.nn.Module) -> torch.device:
    for tensor in [*module.parameters(), *module.buffers()]:
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def batch_windows(
    trunk: torch.nn.Module, images: torch.Tensor, windows: list[Window]
) -> torch.Tensor:
    """Features of one batch for every window, from one trunk pass: float32 [W, B, K, width]
    on the trunk's device."""
    if isinstance(trunk, PixelPatches):  # one "window": the patches themselves
        return trunk(images).unsqueeze(0).expand(len(windows), -1, -1, -1).contiguous()
    device = _device_of(trunk)
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
