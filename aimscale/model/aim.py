"""AIM: trunk + prediction head + pre-training objective; `forward` returns the loss.

Autoregressive objectives (`pixel_norm`, `pixel_raw`, `tokens`): tokens are permuted into the
autoregression order, run through the trunk with prefix-causal (or causal) attention, and the
head's output at sequence position k predicts patch k+1. Only targets at index >= S are scored
(prefix patches never are; causal mode scores targets 1..K-1). Masked modelling (`mim`) replaces
a random `mask_ratio` of the patch embeddings by a learned token, attends bidirectionally and
scores the masked patches only, without a shift.

All randomness (prefix lengths, masks) is drawn from torch's global CPU RNG, so a training loop
that checkpoints the RNG state resumes with the same draws on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aimscale.model.config import ModelConfig
from aimscale.model.heads import build_head
from aimscale.model.masks import prefix_causal_mask, sample_prefix_lengths
from aimscale.model.mup import apply_mup, readout_multiplier
from aimscale.model.objectives import assign_tokens, kmeans, normalize_patches, patchify
from aimscale.model.orders import order_permutation
from aimscale.model.trunk import Trunk


class AIM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        problems = cfg.problems()
        if problems:
            from aimscale.config import ConfigError

            raise ConfigError(problems)
        self.cfg = cfg
        self.trunk = Trunk(cfg)
        if cfg.objective == "mim":
            order = torch.arange(cfg.num_patches)  # no autoregression order in masked modelling
        else:
            order = order_permutation(cfg.order, cfg.grid_size, cfg.order_seed)
        self.register_buffer("order", order, persistent=False)
        patch_dim = cfg.channels * cfg.patch_size**2
        out_dim = cfg.num_tokens if cfg.objective == "tokens" else patch_dim
        self.head = build_head(cfg, out_dim, order)
        if cfg.objective == "mim":
            # pre-training only, so it lives here and not in the trunk kept for probing
            self.mask_token = nn.Parameter(torch.empty(cfg.width))
            nn.init.normal_(self.mask_token, std=0.02)
        if cfg.objective == "tokens":
            # fitted by `prepare`; persistent so that checkpoints carry the codebook
            self.register_buffer("codebook", torch.zeros(cfg.num_tokens, patch_dim))
            self.register_buffer("codebook_fitted", torch.tensor(False))
        # μP (model.parametrization=mup): init rescaled here, per-parameter Adam LR factors used
        # by `param_groups`, the head reads the trunk through `readout_mult`; all 1 otherwise
        self.lr_mult = apply_mup(self, cfg)
        self.readout_mult = readout_multiplier(cfg)

    # ---- setup -------------------------------------------------------------------------------

    @torch.no_grad()
    def prepare(
        self, images: torch.Tensor, max_patches: int = 65536, iters: int = 25, seed: int = 0
    ) -> None:
        """Fit what the objective needs before step 0: the k-means codebook of `tokens`, on the
        normalised patches of `images` (at most `max_patches` of them). A no-op otherwise."""
        if self.cfg.objective != "tokens":
            return
        patches = self._normalize(patchify(images.float().cpu(), self.cfg.patch_size))
        patches = patches.flatten(0, 1)
        if len(patches) > max_patches:
            generator = torch.Generator().manual_seed(seed)
            patches = patches[torch.randperm(len(patches), generator=generator)[:max_patches]]
        codebook = kmeans(patches, self.cfg.num_tokens, iters=iters, seed=seed)
        self.codebook.copy_(codebook)
        self.codebook_fitted.fill_(True)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay on matrices and the patch conv; none on biases, norm weights and
        the mask token (positions are buffers, never optimised). `lr_mult` scales the schedule's
        LR per group: 1 for all but μP's hidden matrices, so the standard model has 2 groups."""
        groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            decay = not (param.ndim < 2 or name == "mask_token")
            groups.setdefault((decay, self.lr_mult[name]), []).append(param)
        return [
            {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr_mult": mult}
            for (decay, mult), params in groups.items()
            if params or mult == 1.0
        ]

    # ---- loss --------------------------------------------------------------------------------

    def forward(
        self,
        images: torch.Tensor,
        sample_index: torch.Tensor | None = None,
        draw_size: int | None = None,
    ) -> dict:
        """Images [B, C, H, W] -> dict(loss=scalar tensor, num_targets=int scored patches).

        Random draws (prefix lengths, MIM masks) are made for `draw_size` samples and the rows
        `sample_index` [B] are used: a global batch split over ranks and micro-steps then sees
        exactly the draws of the unsplit batch. Default: B draws, all used.
        """
        if sample_index is None:
            sample_index, draw_size = torch.arange(images.shape[0]), images.shape[0]
        if self.cfg.objective == "mim":
            return self._forward_masked(images, sample_index, draw_size)
        return self._forward_autoregressive(images, sample_index, draw_size)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """Targets per patch in raster order: [B, K, C·p²] values or [B, K] token ids."""
        patches = patchify(images.float(), self.cfg.patch_size)
        if self.cfg.objective == "pixel_raw":
            return patches
        patches = self._normalize(patches)
        if self.cfg.objective == "tokens":
            if not bool(self.codebook_fitted):
                raise RuntimeError(
                    "the tokens objective has no codebook yet: call AIM.prepare(train_images) "
                    "before training (or load a checkpoint that has one)"
                )
            return assign_tokens(patches, self.codebook)
        return patches

    def _forward_autoregressive(
        self, images: torch.Tensor, sample_index: torch.Tensor, draw_size: int
    ) -> dict:
        batch, num = images.shape[0], self.cfg.num_patches
        x = self.trunk.embed(images)[:, self.order]  # positions first, then the order
        targets = self.targets(images)[:, self.order]
        if self.cfg.attention == "prefix":
            prefix = sample_prefix_lengths(draw_size, num)[sample_index]  # CPU
            attn_mask, is_causal = prefix_causal_mask(prefix.to(images.device), num), False
        else:  # causal: every patch after the first is a target
            prefix = torch.ones(batch, dtype=torch.long)
            attn_mask, is_causal = None, True
        hidden = self._readout(self.trunk(x, attn_mask=attn_mask, is_causal=is_causal))
        pred = self.head(hidden, attn_mask=attn_mask, is_causal=is_causal)
        per_patch = self._patch_loss(pred[:, :-1], targets[:, 1:])  # [B, K-1], shift by one
        target_index = torch.arange(1, num, device=images.device)
        scored = target_index[None, :] >= prefix.to(images.device)[:, None]
        num_targets = int((num - prefix).sum())  # from the CPU copy: no device sync
        loss = (per_patch * scored).sum() / num_targets
        return {"loss": loss, "num_targets": num_targets}

    def _forward_masked(
        self, images: torch.Tensor, sample_index: torch.Tensor, draw_size: int
    ) -> dict:
        batch, num = images.shape[0], self.cfg.num_patches
        num_masked = min(num - 1, max(1, round(self.cfg.mask_ratio * num)))
        ranks = torch.rand(draw_size, num)[sample_index].argsort(dim=1)  # CPU global RNG
        masked = torch.zeros(batch, num, dtype=torch.bool)
        masked.scatter_(1, ranks[:, :num_masked], True)
        masked = masked.to(images.device)
        x = self.trunk.embed(images, mask=masked, mask_token=self.mask_token)
        pred = self.head(self._readout(self.trunk(x)))  # bidirectional
        targets = self._normalize(patchify(images.float(), self.cfg.patch_size))
        per_patch = self._patch_loss(pred, targets)
        num_targets = batch * num_masked
        loss = (per_patch * masked).sum() / num_targets
        return {"loss": loss, "num_targets": num_targets}

    def _normalize(self, patches: torch.Tensor) -> torch.Tensor:
        return normalize_patches(patches, unbiased=self.cfg.target_var == "unbiased")

    def _readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """The trunk's output as the head reads it: × 1/m under μP (skipped when 1)."""
        return hidden if self.readout_mult == 1.0 else hidden * self.readout_mult

    def _patch_loss(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-patch loss [B, N]: MSE averaged over the patch's values, or cross-entropy."""
        if self.cfg.objective == "tokens":
            logits = pred.float().flatten(0, 1)
            loss = F.cross_entropy(logits, targets.flatten(), reduction="none")
            return loss.view(targets.shape)
        return ((pred.float() - targets) ** 2).mean(dim=-1)
