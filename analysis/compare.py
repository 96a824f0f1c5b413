"""Comparisons across runs: ablation tables (the factor compared, differences to a baseline
with intervals over seeds), width vs depth at matched size, layer-wise probes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import DEFAULT_LEVEL, interval
from .data import numeric, require_columns
from .errors import AnalysisError
from .replicates import config_columns

LAYER_PROBE = re.compile(r"^probe\.(?P<kind>.+?)_blocks(?P<start>\d+)-(?P<end>\d+)\.top1$")
BASELINE_NAMES = ("baseline", "base", "default", "control", "reference")


def pick_baseline(variants: list[str]) -> str:
    """A variant named like a baseline, else the first one."""
    for v in variants:
        if str(v).lower() in BASELINE_NAMES:
            return v
    return variants[0]


def ablation_factor(df: pd.DataFrame, wanted: str | None = None) -> str:
    """The column whose values an ablation compares: ``wanted`` when given, else ``variant``
    when it takes ≥ 2 values, else the one config key the runs vary besides the seed."""
    if wanted is not None:
        require_columns(df, [wanted])
        if df[wanted].nunique() < 2:
            raise AnalysisError(f"the factor '{wanted}' takes {df[wanted].nunique()} value(s) in "
                                "the analysed runs; nothing to compare")
        return wanted
    if "variant" in df.columns and df["variant"].nunique() >= 2:
        return "variant"
    varied = [c for c in config_columns(df) if c != "variant" and df[c].nunique() >= 2]
    if len(varied) == 1:
        return varied[0]
    if not varied:
        raise AnalysisError("the runs vary no config key besides the seed (and no 'variant' "
                            "column has 2 values): nothing to compare")
    raise AnalysisError(f"the runs vary {len(varied)} config keys ({', '.join(varied[:6])}); "
                        "name the one to compare with `compare: {factor: KEY, baseline: VALUE}` "
                        "in the sweep spec")


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = DEFAULT_LEVEL
                   ) -> tuple[float, float]:
    """Welch's t-interval of mean(a) − mean(b) (unequal variances; each needs ≥ 2 values)."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se2 = va + vb
    if se2 <= 0:
        return diff, diff
    dof = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(se2))
    return diff - half, diff + half


def _match(order: list[str], wanted: str) -> str:
    """``wanted`` among the factor's values as text, also as a number or case-insensitively
    (a CSV turns `1` into `1.0` and `true` into `True`)."""
    if wanted in order:
        return wanted
    for v in order:
        if v.lower() == wanted.lower():
            return v
        try:
            if float(v) == float(wanted):
                return v
        except ValueError:
            pass
    raise AnalysisError(f"Baseline '{wanted}' is not among the values {order}; pass one of "
                        "them as the baseline.")


def ablation_table(df: pd.DataFrame, variant: str, metric: str, *, baseline: str | None = None,
                   bootstrap: int = 1000, seed: int | None = 0,
                   level: float = DEFAULT_LEVEL, method: str = "welch") -> pd.DataFrame:
    """Per value of ``variant`` (baseline first): runs (seeds), mean ± std of ``metric``, and
    the difference of means to the baseline with an interval: Welch's t-interval
    (``method="welch"``, honest with 3 seeds) or a bootstrap with seeds resampled within each
    variant (``"bootstrap"``).

    ``resolved``: the interval excludes 0 (None for the baseline and where there is no
    interval). A variant with one seed gets no std and no interval: one run says nothing about
    seed noise.
    """
    if method not in ("welch", "bootstrap"):
        raise AnalysisError(f"unknown interval method '{method}'; use welch or bootstrap")
    require_columns(df, [variant, metric])
    vals = numeric(df, metric)
    keep = np.isfinite(vals)
    sub = pd.DataFrame({"variant": df[variant].astype(str).to_numpy()[keep], "v": vals[keep]})
    if sub.empty:
        raise AnalysisError(f"No finite values of '{metric}' to compare across '{variant}'.")
    order = list(dict.fromkeys(sub["variant"]))
    base = pick_baseline(order) if baseline is None else _match(order, str(baseline))
    order = [base] + [o for o in order if o != base]
    rng = np.random.default_rng(seed)

    def boot_means(v: np.ndarray) -> np.ndarray | None:
        if len(v) < 2 or bootstrap <= 0:
            return None
        return v[rng.integers(0, len(v), size=(bootstrap, len(v)))].mean(axis=1)

    groups = {k: g["v"].to_numpy() for k, g in sub.groupby("variant", sort=False)}
    base_v = groups[base]
    base_b = boot_means(base_v) if method == "bootstrap" else None
    rows = []
    for name in order:
        v = groups[name]
        diff = float(v.mean() - base_v.mean())
        lo = hi = np.nan
        if name != base and len(v) >= 2 and len(base_v) >= 2:
            if method == "welch":
                lo, hi = welch_interval(v, base_v, level)
            elif (b := boot_means(v)) is not None and base_b is not None:
                lo, hi = interval(b - base_b, level)
        resolved = None if name == base or not np.isfinite(lo) else bool(lo > 0 or hi < 0)
        rows.append({"variant": name, "n": len(v), "mean": float(v.mean()),
                     "std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                     "diff": 0.0 if name == base else diff, "diff_lo": float(lo),
                     "diff_hi": float(hi), "baseline": name == base, "resolved": resolved})
    return pd.DataFrame(rows)


def ablation_verdicts(table: pd.DataFrame, metric: str, level: float = DEFAULT_LEVEL,
                      method: str = "welch") -> list[str]:
    """One sentence per compared value: its difference to the baseline, the interval, and
    whether it is resolved (the interval excludes 0)."""
    base = table.loc[table["baseline"], "variant"].iloc[0]
    what = "Welch t-interval over seeds" if method == "welch" else "bootstrap over seeds"
    n_base = int(table.loc[table["baseline"], "n"].iloc[0])
    out = []
    for row in table[~table["baseline"]].itertuples(index=False):
        head = f"{row.variant} − {base}: Δ {metric} = {row.diff:+.4g}"
        if row.resolved is None:
            out.append(f"{head}; no interval: {row.n} vs {n_base} run(s), each side needs ≥ 2 "
                       "seeds (`seeds: 3` in the spec)")
            continue
        verdict = ("resolved (the interval excludes 0)" if row.resolved
                   else "not resolved: the interval contains 0, so this difference is within "
                        "the seed noise")
        out.append(f"{head} [{row.diff_lo:+.4g}, {row.diff_hi:+.4g}] ({int(100 * level)}% "
                   f"{what}, {row.n} vs {n_base} runs): "
                   f"{verdict}")
    return out


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
