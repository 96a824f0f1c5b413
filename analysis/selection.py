"""Which rows a subcommand analyses: ``--where EXPR`` (pandas query syntax), ``--group-by COLS``
(one result per group), and a warning when a table obviously mixes groups.

Every subcommand loads its table through :func:`load_rows`; :func:`run_command` wraps the
subcommand: it filters once, then runs it on the whole selection or on each group (JSON: a list of
results, each with its ``group`` keys). Publications' tables often hold several configurations or
rows the paper excludes; fitting them pooled gives a confident, wrong number, so a table with
several losses at one input point and a label column that differs between them gets a warning.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .data import load_table, require_columns
from .errors import AnalysisError, FitWarning

MAX_LABEL_VALUES = 50  # a column with more distinct values is a measurement, not a group label


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """``--where`` and ``--group-by`` for a subcommand's parser."""
    p.add_argument("--where", metavar="EXPR", default=None,
                   help="keep rows matching a pandas query, e.g. \"model == 'b' and N > 1e8\" "
                        "(backticks around names with dots: `model.width` == 64)")
    p.add_argument("--group-by", metavar="COLS", default=None,
                   help="comma-separated columns: one result per group (JSON: a list)")


def apply_where(df: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """Rows of ``df`` matching ``expr``; a clear error when it is invalid or keeps nothing."""
    if not expr:
        return df
    try:
        out = df.query(expr, engine="python")
    except Exception as err:  # pandas raises many kinds (NameError, SyntaxError, TypeError…)
        avail = ", ".join(map(str, df.columns[:40]))
        raise AnalysisError(
            f"--where {expr!r} is not a valid filter on this table ({type(err).__name__}: "
            f"{err}). Use pandas query syntax, e.g. \"tokens > 1e9 and model == 'a'\", with "
            f"backticks around column names that are not identifiers; columns: {avail}.") from None
    if not isinstance(out, pd.DataFrame) or len(out) == 0:
        raise AnalysisError(f"--where {expr!r} keeps none of the {len(df)} rows; check the "
                            "condition and the column values.")
    return out


def load_rows(args) -> pd.DataFrame:
    """The table of ``args.table`` after ``--where`` (or the group :func:`run_command` set)."""
    frame = getattr(args, "frame", None)
    if frame is not None:
        return frame.copy()
    return apply_where(load_table(args.table), getattr(args, "where", None))


def group_columns(spec: str | None) -> list[str]:
    return [c.strip() for c in spec.split(",") if c.strip()] if spec else []


def groups(df: pd.DataFrame, by: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    """(keys, rows) per distinct combination of ``by`` (missing values form their own group)."""
    require_columns(df, by)
    out = []
    for keys, sub in df.groupby(by, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        out.append(({c: _plain(v) for c, v in zip(by, keys, strict=True)}, sub))
    return out


def _plain(v):
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and not np.isfinite(v) else v


def key_columns(args) -> tuple[list[str], str | None]:
    """The input columns (and the loss) whose repeats signal a mixed table, per subcommand;
    for isoflop the first key is compute, grouped into budgets."""
    cmd = getattr(args, "command", None)
    loss = getattr(args, "loss", None)
    if cmd in ("fit", "backtest", "predict") and not getattr(args, "group", None):
        if getattr(args, "law", None) == "chinchilla":
            keys = [args.n, args.d] if args.n and args.d else []
        else:
            keys = [args.x] if getattr(args, "x", None) else []
        return keys, loss
    if cmd == "isoflop":
        size = [c for c in (args.n, args.d) if c]
        return ([args.flops] + size[:1]) if size else [], loss
    return [], None


def _label_columns(df: pd.DataFrame, skip: list[str], text_only: bool) -> list[str]:
    out = []
    for c in df.columns:
        if c in skip:
            continue
        v = df[c]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            if text_only:
                continue
            vals = v.dropna().to_numpy(dtype=float)
            if not np.all(vals == np.round(vals)) or np.unique(vals).size > 20:
                continue
        elif v.nunique() > MAX_LABEL_VALUES:
            continue
        out.append(c)
    return out


def _varying(df: pd.DataFrame, places: pd.Series, cols: list[str]) -> tuple[list, list]:
    """Columns that differ within at least half of the places: (labels, seed-like)."""
    labels, seeds = [], []
    by = df.groupby(places.to_numpy())
    for c in cols:
        if (by[c].nunique() > 1).mean() >= 0.5:
            (seeds if re.search(r"seed|replicate|run|id$", str(c), re.I) else labels).append(c)
    return labels, seeds


def mixing_warning(df: pd.DataFrame, keys: list[str], loss: str | None,
                   budgets: bool = False) -> str | None:
    """A warning when several losses sit at one input point (or, with ``budgets``, one compute
    budget holds several values of a text label) and a label column differs there."""
    if not keys or loss is None or not set(keys + [loss]) <= set(df.columns):
        return None
    hint = "fit each group with --group-by {0} or select one with --where"
    if budgets:
        from .data import numeric
        from .isoflop import group_budgets

        flops = numeric(df, keys[0])
        ok = np.isfinite(flops) & (flops > 0)
        if ok.sum() >= 2:
            sub = df.loc[ok]
            labels, _ = _varying(sub, pd.Series(group_budgets(flops[ok])),
                                 _label_columns(sub, keys + [loss], text_only=True))
            if labels:
                return (f"the table mixes groups: column(s) {', '.join(map(repr, labels[:5]))} "
                        f"take several values within one compute budget; "
                        + hint.format(labels[0]))
    dup = df.duplicated(keys, keep=False)
    if not dup.any():
        return _text_groups(df, keys + [loss], hint)
    rep = df[dup]
    place = rep.groupby(keys, dropna=False).ngroup()
    varying = rep.groupby(place.to_numpy())[loss].nunique()
    if not (varying > 1).any():
        return None
    n_places = int((varying > 1).sum())
    labels, seeds = _varying(rep, place, _label_columns(df, keys + [loss], text_only=False))
    where = "(" + ", ".join(keys) + ")"
    if labels:
        return (f"the table mixes groups: {n_places} points {where} carry several losses and "
                f"column(s) {', '.join(map(repr, labels[:5]))} differ between them; "
                + hint.format(labels[0]))
    if seeds:
        return None  # replicate seeds: several losses per point are expected
    return (f"{n_places} points {where} carry several different losses: if they are replicate "
            "seeds this is fine; if they come from different configurations, separate them with "
            "--group-by COL or --where EXPR")


def _text_groups(df: pd.DataFrame, skip: list[str], hint: str) -> str | None:
    """A text column that splits the rows into several groups of at least 3 rows each."""
    for c in _label_columns(df, skip, text_only=True):
        if re.search(r"seed|replicate|run|id$|status", str(c), re.I):
            continue
        counts = df[c].value_counts()
        if len(counts) >= 2 and counts.min() >= 3:
            return (f"the table mixes groups: column {c!r} splits it into {len(counts)} groups "
                    f"({', '.join(map(str, counts.index[:5]))}) pooled into one fit; "
                    + hint.format(c))
    return None


def _slug(keys: dict) -> str:
    text = "-".join(f"{k}={v}" for k, v in keys.items())
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)[:120]


def _run_one(fn, args, frame: pd.DataFrame) -> tuple[dict, int]:
    args.frame = frame
    keys, loss = key_columns(args)
    note = mixing_warning(frame, keys, loss, budgets=args.command == "isoflop")
    if note:
        warnings.warn(note, FitWarning, stacklevel=2)
    out, code = fn(args)
    if note and isinstance(out, dict):
        out["warnings"] = [note] + list(out.get("warnings", []))
    return out, code


def run_command(fn, args) -> tuple[dict | list, int]:
    """Run subcommand ``fn`` on the selected rows, or once per ``--group-by`` group.

    Grouped: a list of ``{"group": {col: value}, **result}`` (or ``"error"`` for a group that
    cannot be analysed); the exit code is the worst of the groups'. ``report`` writes each group
    into its own subfolder of the output folder.
    """
    by = group_columns(getattr(args, "group_by", None))
    df = load_rows(args)
    if not by:
        return _run_one(fn, args, df)
    results, worst = [], 0
    as_json = getattr(args, "json", False)
    for keys, sub in groups(df, by):
        one = copy.copy(args)
        if args.command == "report":
            one.out = str(Path(args.out or "report") / _slug(keys))
        if not as_json:
            print(f"== group {', '.join(f'{k}={v}' for k, v in keys.items())} "
                  f"({len(sub)} rows)", flush=True)
        try:
            out, code = _run_one(fn, one, sub)
        except AnalysisError as err:
            print(f"error: group {keys}: {err}", file=sys.stderr)
            out, code = {"error": str(err)}, 2
        results.append({"group": keys, **out})
        worst = max(worst, code)
    return results, worst
