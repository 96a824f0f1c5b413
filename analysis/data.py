"""Reading tables and cleaning the columns a fit uses."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import AnalysisError, FitWarning


def load_table(path: str | Path, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV, TSV, parquet or JSON-lines table."""
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"Table {path} does not exist; pass the path of a CSV or parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix == ".tsv":
            df = pd.read_csv(path, sep="\t")
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=suffix == ".jsonl")
        else:
            df = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise AnalysisError(f"Table {path} is empty; it needs a header row and one row per "
                            "run.") from err
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, IsADirectoryError,
            ImportError, OSError) as err:
        raise AnalysisError(f"Table {path} cannot be read as {suffix.lstrip('.') or 'CSV'} "
                            f"({type(err).__name__}: {err}); pass a CSV, TSV, parquet or "
                            "JSON-lines file.") from err
    if len(df) == 0 and not allow_empty:
        raise AnalysisError(f"Table {path} has a header but no rows; add one row per run.")
    return df


def require_columns(df: pd.DataFrame, columns: list[str]) -> None:
    """Raise with the missing and the available column names."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        avail = ", ".join(map(str, df.columns[:40]))
        raise AnalysisError(f"Column(s) {', '.join(missing)} not found in the table; "
                            f"available columns: {avail}.")


def numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float, non-numbers as NaN."""
    return pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)


def clean_rows(df: pd.DataFrame, columns: list[str], positive: list[str] | None = None,
               what: str = "fit") -> tuple[pd.DataFrame, list[str]]:
    """Drop rows where ``columns`` hold NaN/inf (or ≤ 0 for ``positive`` columns).

    Returns the kept rows and a list of warnings (also issued as ``FitWarning``) that count what
    was dropped and why.
    """
    require_columns(df, columns)
    positive = columns if positive is None else positive
    keep = np.ones(len(df), dtype=bool)
    notes = []
    for c in columns:
        v = numeric(df, c)
        bad = ~np.isfinite(v)
        if c in positive:
            with np.errstate(invalid="ignore"):
                bad |= ~(v > 0)
        new = bad & keep
        if new.any():
            kind = "NaN, inf or non-positive" if c in positive else "NaN or inf"
            notes.append(f"dropped {int(new.sum())} of {len(df)} rows with {kind} '{c}' "
                         f"before the {what}")
        keep &= ~bad
    for note in notes:
        warnings.warn(note, FitWarning, stacklevel=3)
    return df.loc[keep].copy(), notes


def valid_mask(arrays: dict[str, np.ndarray], positive: bool = True,
               what: str = "fit") -> tuple[np.ndarray, list[str]]:
    """Rows where every array is finite (and > 0 when ``positive``), with counted warnings (also
    issued as ``FitWarning``) for what was dropped."""
    n = len(next(iter(arrays.values())))
    keep = np.ones(n, dtype=bool)
    notes = []
    for name, v in arrays.items():
        v = np.asarray(v, dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(v) | (~(v > 0) if positive else False)
        new = bad & keep
        if new.any():
            kind = "NaN, inf or non-positive" if positive else "NaN or inf"
            notes.append(f"dropped {int(new.sum())} of {n} points with {kind} {name} before the "
                         f"{what}")
        keep &= ~bad
    for note in notes:
        warnings.warn(note, FitWarning, stacklevel=3)
    return keep, notes
