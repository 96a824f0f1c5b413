"""HTML and Markdown built side by side, and the page around them."""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..jsonio import dumps, to_jsonable
from ..plots import fmt
from .figwriter import FigureWriter

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.7em}h2{margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}table{border-collapse:collapse;margin:.8em 0;
font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}
img{max-width:100%}
figcaption{font-size:.88em;color:#555}.skip{color:#8a5a00;background:#fff7e6;padding:.4em .6em;
border-left:3px solid #e0a000}.warn{color:#8a2a00}.meta{color:#555;font-size:.9em}
.failed{color:#8a0000;background:#ffecec;padding:.5em .8em;border-left:4px solid #c00000}"""


def cell(v) -> str:
    """One table cell as text: yes/no, 3 significant digits, blank for missing."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return fmt(float(v)) if np.isfinite(v) else ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return "" if v is None else str(v)


def ci(t) -> str:
    """An interval as ``[lo, hi]``, blank when there is none."""
    return "" if t is None else f"[{fmt(t[0])}, {fmt(t[1])}]"


@dataclass
class Doc:
    """The page's body in both formats; figures are written under ``out_dir/figures``."""

    out_dir: Path
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    writer: FigureWriter = field(default_factory=FigureWriter)

    def h(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"\n{'#' * level} {text}\n")

    def p(self, text: str, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{c}>{html.escape(text)}</p>")
        self.md.append(f"{'> ' if cls else ''}{text}\n")

    def skip(self, reason: str) -> None:
        self.p(f"Skipped: {reason}", "skip")

    def bullets(self, items: list[str], cls: str = "") -> None:
        if not items:
            return
        c = f' class="{cls}"' if cls else ""
        self.html.append(f"<ul{c}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items)
                         + "</ul>")
        self.md.append("\n".join(f"- {i}" for i in items) + "\n")

    def table(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        shown = df.copy()
        for c in shown.columns:
            shown[c] = [cell(v) for v in shown[c]]
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        lines = ["| " + " | ".join(map(str, shown.columns)) + " |",
                 "|" + "---|" * len(shown.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)]
        self.md.append("\n".join(lines) + "\n")

    def figure(self, fig, stem: str, caption: str) -> None:
        """The figure's PNG (embedded in the HTML once written, see ``finish``) and SVG."""
        paths = self.writer.submit(fig, self.out_dir / "figures" / stem)
        self.figures += paths
        self.html.append(_Embed(paths[0], f'<figure><img src="data:image/png;base64,{_PNG}" '
                                f'alt="{stem}"><figcaption>{html.escape(caption)} '
                                f'(<a href="figures/{stem}.svg">SVG</a>)</figcaption></figure>'))
        self.md.append(f"![{stem}](figures/{stem}.png)\n\n*{caption}*\n")

    def finish(self, on_error=None) -> None:
        """Wait for the figures being written and embed their PNGs in the HTML."""
        self.writer.finish(on_error)
        self.html = [h.render() if isinstance(h, _Embed) else h for h in self.html]


_PNG = "\x00png\x00"


@dataclass
class _Embed:
    """HTML of a figure whose PNG is still being written: ``template`` with ``_PNG`` where its
    base64 bytes go."""

    png: Path
    template: str

    def render(self) -> str:
        if not self.png.exists():  # its section failed while drawing it: say so, embed nothing
            return self.template.replace(f'src="data:image/png;base64,{_PNG}"', "")
        return self.template.replace(_PNG, base64.b64encode(self.png.read_bytes()).decode())


def write_page(doc: Doc, title: str, summary: dict, elapsed: float,
               failures: list[str]) -> Path:
    """report.html, report.md and report.json in ``doc.out_dir``; failed sections are listed
    above everything else. Returns the HTML path."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    meta = f"Generated {stamp} in {elapsed:.1f} s by analysis.report."
    top_html, top_md = "", ""
    if failures:
        head = (f"{len(failures)} section(s) failed with an unexpected error and show no "
                "analysis; please report it:")
        top_html = (f"<div class='failed'><p>{html.escape(head)}</p><ul>"
                    + "".join(f"<li>{html.escape(f)}</li>" for f in failures) + "</ul></div>")
        top_md = f"> **{head}**\n" + "".join(f"> - {f}\n" for f in failures) + "\n"
    t = html.escape(title)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{t}</title>"
            f"<style>{CSS}</style></head><body><h1>{t}</h1>"
            f"<p class='meta'>{html.escape(meta)}</p>{top_html}" + "\n".join(doc.html)
            + "</body></html>")
    out = doc.out_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    md = f"# {title}\n\n{meta}\n\n{top_md}" + "\n".join(doc.md)
    (doc.out_dir / "report.md").write_text(md, encoding="utf-8")
    (doc.out_dir / "report.json").write_text(dumps(to_jsonable(summary), indent=1),
                                             encoding="utf-8")
    return out
