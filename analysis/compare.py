"""Comparisons across runs: ablation tables, width vs depth at matched size, layer-wise probes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .bootstrap import DEFAULT_LEVEL, interval
from .data import numeric, require_columns
from .errors import AnalysisError

LAYER_PROBE = re.compile(r"^probe\.(?P<kind>.+?)_blocks(?P<start>\d+)-(?P<end>\d+)\.top1$")
BASELINE_NAMES = ("baseline", "base", "default", "control", "reference")


def pick_baseline(variants: list[str]) -> str:
    """A variant named like a baseline, else the first one."""
    for v in variants:
        if str(v).lower() in BASELINE_NAMES:
            return v
    return variants[0]


def ablation_table(df: pd.DataFrame, variant: str, metric: str, *, baseline: str | None = None,
                   bootstrap: int = 1000, seed: int | None = 0,
                   level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Per variant: runs (seeds), mean ± std of ``metric``, and the difference of means to the
    baseline with a bootstrap interval (seeds resampled within each variant).

    A variant with one seed gets no std and no interval: one run says nothing about seed noise.
    """
    require_columns(df, [variant, metric])
    vals = numeric(df, metric)
    keep = np.isfinite(vals)
    sub = pd.DataFrame({"variant": df[variant].astype(str).to_numpy()[keep], "v": vals[keep]})
    if sub.empty:
        raise AnalysisError(f"No finite values of '{metric}' to compare across '{variant}'.")
    order = list(dict.fromkeys(sub["variant"]))
    base = pick_baseline(order) if baseline is None else str(baseline)
    if base not in order:
        raise AnalysisError(f"Baseline '{base}' is not among the variants {order}; pass one of "
                            "them as the baseline.")
    rng = np.random.default_rng(seed)

    def boot_means(v: np.ndarray) -> np.ndarray | None:
        if len(v) < 2 or bootstrap <= 0:
            return None
        return v[rng.integers(0, len(v), size=(bootstrap, len(v)))].mean(axis=1)

    groups = {k: g["v"].to_numpy() for k, g in sub.groupby("variant", sort=False)}
    base_v = groups[base]
    base_b = boot_means(base_v)
    rows = []
    for name in order:
        v = groups[name]
        diff = float(v.mean() - base_v.mean())
        lo = hi = np.nan
        b = boot_means(v)
        if name != base and b is not None and base_b is not None:
            lo, hi = interval(b - base_b, level)
        rows.append({"variant": name, "n": len(v), "mean": float(v.mean()),
                     "std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                     "diff": 0.0 if name == base else diff, "diff_lo": float(lo),
                     "diff_hi": float(hi), "baseline": name == base})
    return pd.DataFrame(rows)


def _cluster(values: np.ndarray, rel_tol: float) -> np.ndarray:
    order = np.argsort(values)
    labels = np.empty(len(values), dtype=int)
    lab, start = 0, np.log(values[order[0]])
    for i in order:
        if np.log(values[i]) - start > np.log1p(rel_tol):
            lab, start = lab + 1, np.log(values[i])
        labels[i] = lab
    return labels


def width_vs_depth(df: pd.DataFrame, width: str, depth: str, metric: str, match: str, *,
                   rel_tol: float = 0.15, within: list[str] | None = None) -> pd.DataFrame:
    """Runs grouped by ``match`` (params or FLOPs) within ``rel_tol`` and by equal values of the
    ``within`` columns (e.g. data size); for every group holding at least two shapes: each
    shape's mean ``metric`` (over seeds) and its rank within the group (1 = lowest)."""
    within = list(within or [])
    require_columns(df, [width, depth, metric, match, *within])
    m = numeric(df, match)
    v = numeric(df, metric)
    ok = np.isfinite(m) & (m > 0) & np.isfinite(v)
    if ok.sum() < 2:
        return pd.DataFrame(columns=["group", "match", "width", "depth", "n", "mean", "std",
                                     "rank"])
    sub = pd.DataFrame({"width": numeric(df, width)[ok], "depth": numeric(df, depth)[ok],
                        "match": m[ok], "v": v[ok]})
    for i, c in enumerate(within):
        sub[f"_w{i}"] = df[c].to_numpy()[ok]
    sub["_m"] = _cluster(sub["match"].to_numpy(), rel_tol)
    keys = ["_m"] + [f"_w{i}" for i in range(len(within))]
    rows = []
    for gid, (_, g) in enumerate(sub.groupby(keys, sort=True)):
        shapes = g.groupby(["width", "depth"])
        if len(shapes) < 2:
            continue
        stats = shapes.agg(n=("v", "size"), mean=("v", "mean"), std=("v", "std"),
                           match=("match", "mean")).reset_index()
        stats["rank"] = stats["mean"].rank(method="min").astype(int)
        stats["group"] = gid
        rows.append(stats)
    if not rows:
        return pd.DataFrame(columns=["group", "match", "width", "depth", "n", "mean", "std",
                                     "rank"])
    out = pd.concat(rows, ignore_index=True)
    out[["width", "depth"]] = out[["width", "depth"]].astype(int)
    out["group"] = pd.factorize(out["group"])[0] + 1
    return out[["group", "match", "width", "depth", "n", "mean", "std", "rank"]]


def layer_probe_columns(df: pd.DataFrame) -> list[str]:
    """Columns named probe.<kind>_blocks<start>-<end>.top1."""
    return [c for c in df.columns if LAYER_PROBE.match(str(c))]


def layerwise(df: pd.DataFrame, run_id: str = "run_id") -> pd.DataFrame:
    """Tidy layer-wise probe table: run, kind, first and last block, top-1 (one row each)."""
    cols = layer_probe_columns(df)
    if not cols:
        return pd.DataFrame(columns=[run_id, "kind", "start", "end", "top1"])
    ids = df[run_id] if run_id in df.columns else pd.Series(range(len(df)), index=df.index)
    rows = []
    for c in cols:
        m = LAYER_PROBE.match(c)
        vals = numeric(df, c)
        for rid, v in zip(ids, vals, strict=True):
            if np.isfinite(v):
                rows.append({run_id: rid, "kind": m["kind"], "start": int(m["start"]),
                             "end": int(m["end"]), "top1": float(v)})
    return pd.DataFrame(rows)
