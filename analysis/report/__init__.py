"""One self-contained HTML page (and Markdown) from a runs table and, optionally, a curves table.

Each section either shows its analysis or says plainly why it was skipped (a missing column, too
few runs, flat data). Every number in it is also written to ``report.json``. A section that fails
unexpectedly raises under ``ReportOptions(strict=True)`` (tests, CI) and is otherwise a warning at
the top of the page and on stderr.

Layout: ``options`` (what the report reads), ``core`` (the run: columns, sections in order,
shared fits, writing), ``render`` (HTML + Markdown), one module per section, and column detection
in ``analysis.report_columns``.
"""

from .core import Report, build_report
from .options import ReportOptions

__all__ = ["Report", "ReportOptions", "build_report"]
