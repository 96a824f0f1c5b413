"""The demo's verdict: the figures the study was designed to show, read from its two reports.

`summarise` reads the scaling report's JSON (joint law, backtest, loss ↔ probe correlation) and
the ablation report's JSON (the compared factor's difference to its baseline over seeds), checks
each against the demo's targets (README, "The demo study") and says whether the ablation agrees
with the paper. The demo writes the result to `SWEEP_DIR/demo.json` and prints it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from aimscale.jsonfiles import read_json

# The demo's targets (issue "a law, identified, and a prediction that holds").
MIN_FLOOR = 0.01  # joint law: E above this
MAX_REL_HALFWIDTH = 0.5  # alpha, beta: interval within ±50% of the value
MIN_HELD_OUT = 4  # backtest: at least this many held-out runs ...
MIN_COMPUTE_RATIO = 4.0  # ... each at least this many times the compute of any fitted run
MAX_MAPE = 2.0  # percent
MAX_COVERAGE_SHORTFALL = 0.15  # coverage at least nominal − 15 points
MAX_SPEARMAN = -0.9  # loss ↔ attentive top-1 across runs
MIN_SEEDS = 3

# What the paper found for each ablation the demo may run: (factor, value) -> (sign of
# value − baseline in probe top-1, the finding). El-Nouby et al. 2024 (AIM), sections 5.x.
PAPER = {
    ("model.attention", "causal"): (-1, "prefix-causal pre-training beats causal pre-training "
                                        "under bidirectional probing"),
    ("model.objective", "pixel_raw"): (-1, "normalised-pixel targets beat raw-pixel targets"),
    ("model.objective", "tokens"): (-1, "normalised-pixel targets beat discrete tokens"),
}


def _target(value: Any, met: bool | None, want: str) -> dict[str, Any]:
    return {"value": value, "target": want, "met": met}


def _rel_halfwidth(value: float, ci: list[float] | None) -> float | None:
    if not ci or value == 0 or not all(math.isfinite(float(c)) for c in ci):
        return None
    return max(abs(float(ci[0]) - value), abs(float(ci[1]) - value)) / abs(value)


def _scaling(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    figures: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    fit = (report.get("joint") or {}).get("fit") or {}
    params, ci = fit.get("params") or {}, fit.get("ci") or {}
    if params:
        figures["joint"] = {k: {"value": params[k], "ci": ci.get(k)} for k in params}
        figures["joint"]["r2_log"] = fit.get("r2_log")
        targets["floor_E"] = _target(params.get("E"), params.get("E", 0) > MIN_FLOOR,
                                     f"> {MIN_FLOOR}")
        for k in ("alpha", "beta"):
            rel = _rel_halfwidth(params.get(k, 0.0), ci.get(k))
            targets[f"{k}_interval"] = _target(
                rel, rel is not None and rel <= MAX_REL_HALFWIDTH,
                f"interval within ±{100 * MAX_REL_HALFWIDTH:.0f}% of the value")
    bt = report.get("backtest") or {}
    if bt:
        preds = bt.get("predictions") or []
        held = [p["split"] for p in preds if p.get("split") is not None]
        ratio = (min(held) / bt["threshold"]) if held and bt.get("threshold") else None
        figures["backtest"] = {k: bt.get(k) for k in (
            "n_train", "n_test", "mape", "coverage", "level", "threshold", "holdout_column")}
        figures["backtest"]["min_compute_ratio"] = ratio
        targets["held_out_runs"] = _target(bt.get("n_test"), (bt.get("n_test") or 0)
                                           >= MIN_HELD_OUT, f">= {MIN_HELD_OUT}")
        targets["compute_ratio"] = _target(ratio, ratio is not None and ratio >= MIN_COMPUTE_RATIO,
                                           f">= {MIN_COMPUTE_RATIO:g}x the largest fitted run")
        targets["mape"] = _target(bt.get("mape"), bt.get("mape") is not None
                                  and bt["mape"] <= MAX_MAPE, f"<= {MAX_MAPE:g}%")
        cov, lvl = bt.get("coverage"), bt.get("level")
        targets["coverage"] = _target(cov, cov is not None and lvl is not None
                                      and cov >= lvl - MAX_COVERAGE_SHORTFALL - 1e-9,
                                      f">= level - {100 * MAX_COVERAGE_SHORTFALL:.0f} points")
    corr = (report.get("downstream") or {}).get("correlation") or {}
    if corr.get("spearman") is not None:
        figures["spearman_loss_top1"] = corr["spearman"]
        targets["spearman"] = _target(corr["spearman"], corr["spearman"] <= MAX_SPEARMAN,
                                      f"<= {MAX_SPEARMAN}")
    return figures, targets


def _ablation(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    abl = report.get("ablations") or {}
    tables = abl.get("tables") or {}
    if not tables:
        return {}, {}
    factor = abl.get("factor")
    # the probe's metric when there is one (what the paper compares), else the loss
    metric = next((m for m in tables if "top1" in m), next(iter(tables)))
    rows = tables[metric]["table"]
    base = next(r for r in rows if r.get("baseline"))
    out = {"factor": factor, "baseline": base["variant"], "metric": metric,
           "setting": abl.get("setting"), "comparisons": []}
    targets = {"ablation_seeds": _target(min(int(r["n"]) for r in rows),
                                         min(int(r["n"]) for r in rows) >= MIN_SEEDS,
                                         f">= {MIN_SEEDS} seeds per value")}
    for r in rows:
        if r.get("baseline"):
            continue
        row = {k: r.get(k) for k in ("variant", "n", "mean", "diff", "diff_lo", "diff_hi",
                                     "resolved")}
        row["baseline_mean"] = base["mean"]
        paper = PAPER.get((factor, str(r["variant"])))
        if paper is not None and "top1" in metric:
            sign, finding = paper
            same = (r["diff"] > 0) == (sign > 0)
            row["paper"] = finding
            row["agrees_with_paper"] = ("agrees" if same else "disagrees") + (
                "" if r.get("resolved") else " in sign, but not resolved (within seed noise)")
        out["comparisons"].append(row)
    return out, targets


def summarise(scaling_dir: Path, ablation_dir: Path | None) -> dict[str, Any]:
    """The demo's figures and targets from `<dir>/report/report.json` of both sweeps."""
    scaling = read_json(Path(scaling_dir) / "report" / "report.json", default={}) or {}
    figures, targets = _scaling(scaling)
    summary: dict[str, Any] = {"scaling_report": str(Path(scaling_dir) / "report"),
                               **figures}
    if ablation_dir is not None:
        ablation = read_json(Path(ablation_dir) / "report" / "report.json", default={}) or {}
        summary["ablation_report"] = str(Path(ablation_dir) / "report")
        summary["ablation"], more = _ablation(ablation)
        targets.update(more)
    summary["targets"] = targets
    summary["all_met"] = bool(targets) and all(t["met"] for t in targets.values())
    return summary


def _num(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def lines(summary: dict[str, Any]) -> list[str]:
    """The summary as lines for the terminal."""
    out = []
    joint = summary.get("joint") or {}
    if joint:
        parts = [f"{k} {_num(v['value'])} [{', '.join(_num(c) for c in v['ci'] or [])}]"
                 for k, v in joint.items() if isinstance(v, dict) and k in ("E", "alpha", "beta")]
        out.append("joint law: " + "; ".join(parts))
    bt = summary.get("backtest") or {}
    if bt:
        out.append(f"backtest: fit {bt['n_train']} runs, predicted {bt['n_test']} held-out runs "
                   f">= {_num(bt['min_compute_ratio'])}x the largest fitted compute: MAPE "
                   f"{_num(bt['mape'])}%, intervals held {_num(bt['coverage'])} (level "
                   f"{_num(bt['level'])})")
    if "spearman_loss_top1" in summary:
        out.append(f"loss <-> attentive top-1 Spearman {_num(summary['spearman_loss_top1'])}")
    abl = summary.get("ablation") or {}
    for c in abl.get("comparisons", []):
        out.append(f"ablation {abl['factor']}: {c['variant']} - {abl['baseline']} "
                   f"{abl['metric']} {c['diff']:+.4f} [{_num(c['diff_lo'])}, "
                   f"{_num(c['diff_hi'])}] over {c['n']} seeds; paper: "
                   f"{c.get('agrees_with_paper', 'no paper figure for this factor')}")
    missed = [k for k, t in summary.get("targets", {}).items() if not t["met"]]
    out.append("targets: all met" if summary.get("all_met") else
               f"targets missed: {', '.join(missed) or 'none checked'}")
    return out
