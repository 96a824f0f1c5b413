"""The AIM paper's ablation directions, and whether an ablation table agrees with them.

El-Nouby et al. 2024 rank their ablations by downstream top-1 (AIM-0.6B, IN-1k; numbers from
the reference note `AIM_REFERENCE.md`). Each entry below is a config key with its values in
tiers, best first (values in one tier: the paper gives no direction between them, or the linear
and attentive probes disagree), or a monotone trend for a numeric key (larger is better at any
two values). A compared value of an ablation table gets the paper's expected direction against
its baseline, then the verdict:

- `agrees`: the difference is resolved (its interval excludes 0) and has the paper's sign;
- `disagrees`: resolved, with the opposite sign;
- `not resolved`: no interval, or it contains 0 — the run does not decide;
- no verdict (None): the paper does not rank these two values, the metric is not an accuracy
  (the paper compares downstream top-1, not pre-training losses, which differ by target), or
  the variants differ in several ranked keys that pull in opposite directions (`confounded`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PaperAblation:
    factor: str  # config key (runs-table column)
    tiers: tuple[tuple[str, ...], ...] = ()  # best first
    monotone: int = 0  # +1: larger is better (numeric keys)
    reference: str = ""

    def expected(self, value, baseline) -> int | None:
        """+1 when the paper finds `value` better than `baseline`, -1 worse, None unknown."""
        if self.monotone:
            a, b = _number(value), _number(baseline)
            if a is None or b is None or a == b:
                return None
            return self.monotone if a > b else -self.monotone
        ta, tb = self._tier(value), self._tier(baseline)
        if ta is None or tb is None or ta == tb:
            return None
        return 1 if ta < tb else -1

    def _tier(self, value) -> int | None:
        for i, tier in enumerate(self.tiers):
            if any(_same(value, t) for t in tier):
                return i
        return None


PAPER = {a.factor: a for a in (
    PaperAblation("model.attention", (("prefix",), ("causal",)), reference=(
        "prefix-causal pre-training keeps its accuracy under bidirectional probing; causal "
        "pre-training degrades (paper, attention ablation)")),
    PaperAblation("model.objective", (("pixel_norm",), ("pixel_raw", "tokens", "mim")),
                  reference=("normalised-pixel targets beat raw pixels and discrete tokens; "
                             "autoregressive 78.2 vs masked image modelling 70.3 (50% masked) "
                             "/ 77.8 (75%), attentive top-1")),
    PaperAblation("model.mask_ratio", (("0.75",), ("0.5",)),
                  reference="masked image modelling: 75% masked 77.8, 50% masked 70.3"),
    PaperAblation("model.order", (("raster",), ("spiral", "checkerboard"), ("random",)),
                  reference=("raster 69.5/77.4, spiral 67.7/76.3, checkerboard 68.2/76.0, "
                             "random 65.8/75.7 (linear/attentive; spiral vs checkerboard "
                             "differs by probe)")),
    PaperAblation("model.head", (("transformer",), ("mlp",), ("none",)),
                  reference="transformer head 78.5, MLP head 78.2, no head 75.4"),
    PaperAblation("model.head_depth", monotone=1,
                  reference="head depth 6/8/12 → 76.2/77.1/78.2"),
    PaperAblation("model.head_width", monotone=1,
                  reference="head width 512/1024/2048 → 77.7/78.1/78.2"),
    PaperAblation("data.crop_scale_min", (("0.4",), ("0.08",), ("1.0",)),
                  reference="crop scale lower bound 0.08 → 77.7, 0.4 → 78.2, 1.0 → 63.5"),
)}


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(a, b) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return x == y
    return str(a).strip().lower() == str(b).strip().lower()


def _constant(rows: pd.DataFrame, column: str):
    """The one value of `column` in `rows`, or None when it varies or is missing."""
    values = rows[column].dropna().astype(str).unique() if column in rows.columns else []
    return values[0] if len(values) == 1 else None


def paper_direction(factor: str, value, baseline, rows: pd.DataFrame | None = None
                    ) -> tuple[int | None, str]:
    """(expected sign of value − baseline on downstream accuracy, the paper's reference text).

    For `factor` = `variant` (named sets of overrides), the variants are described by the
    ranked config keys that are constant within each and differ between them (`rows`: every
    run with its variant and config columns); claims that disagree give (None, `confounded`).
    """
    if factor in PAPER:
        entry = PAPER[factor]
        sign = entry.expected(value, baseline)
        return sign, entry.reference if sign is not None else ""
    if factor != "variant" or rows is None or "variant" not in rows.columns:
        return None, ""
    names = rows["variant"].astype(str)
    a, b = rows[names == str(value)], rows[names == str(baseline)]
    claims = []
    for key, entry in PAPER.items():
        va, vb = _constant(a, key), _constant(b, key)
        if va is None or vb is None or _same(va, vb):
            continue
        sign = entry.expected(va, vb)
        if sign is not None:
            claims.append((sign, f"{key} {va} vs {vb}: {entry.reference}"))
    if not claims:
        return None, ""
    if len({s for s, _ in claims}) > 1:
        return None, "confounded: " + "; ".join(text for _, text in claims)
    return claims[0][0], "; ".join(text for _, text in claims)


def paper_verdicts(table: pd.DataFrame, factor: str, rows: pd.DataFrame | None = None,
                   accuracy: bool = True) -> pd.DataFrame:
    """`table` (an `ablation_table`) with `paper` (the paper's direction of each value against
    the baseline: higher | lower | None), `paper_verdict` (agrees | disagrees | not resolved |
    None) and `paper_reference` columns. `accuracy`: the metric is a downstream accuracy
    (higher is better); for any other metric every verdict is None."""
    base = table.loc[table["baseline"], "variant"].iloc[0]
    direction, verdict, reference = [], [], []
    for row in table.itertuples(index=False):
        sign, text = (None, "") if row.baseline or not accuracy else paper_direction(
            factor, row.variant, base, rows)
        direction.append(None if sign is None else "higher" if sign > 0 else "lower")
        reference.append(text or None)
        if sign is None:
            verdict.append(None)
        elif row.resolved is None or not row.resolved or not np.isfinite(row.diff):
            verdict.append("not resolved")
        else:
            verdict.append("agrees" if np.sign(row.diff) == sign else "disagrees")
    return table.assign(paper=direction, paper_verdict=verdict, paper_reference=reference)


def verdict_sentences(table: pd.DataFrame, metric: str) -> list[str]:
    """One sentence per value the paper ranks against the baseline."""
    base = table.loc[table["baseline"], "variant"].iloc[0]
    out = []
    for row in table[table["paper"].notna()].itertuples(index=False):
        out.append(f"{row.variant} vs {base} on {metric}: the paper finds it {row.paper} "
                   f"({row.paper_reference}); here Δ = {row.diff:+.4g} → {row.paper_verdict}")
    return out
