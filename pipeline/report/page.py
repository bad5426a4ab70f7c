"""The page: one number format, and parallel HTML and Markdown bodies built from the same cells.

Every number printed is a cell of the CSV named next to its table, formatted by :func:`fmt`
(3 significant digits), so a test can parse both documents and compare them with the CSVs.
"""
from __future__ import annotations

import base64
import html
import json
import math
import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import CapcastError
from pipeline.files import slug  # noqa: F401  (the report's file names)

DASH = "–"  # printed for an empty cell
TIMES = "×"  # after a multiple (MULTIPLES): "15.6×"
MULTIPLES = {"extrapolation", "k", "k_lower", "k_upper", "factor"}  # columns that are multiples of a compute
# Units of the columns whose unit never changes; a table adds its own (Page.table's ``units``).
UNITS = {"params": "parameters", "params_non_embedding": "parameters", "cross_params": "parameters",
         "tokens": "tokens", **{c: "FLOPs" for c in (
             "compute_flops", "min_compute_flops", "max_compute_flops", "cross_compute", "cross_compute_lo",
             "cross_compute_hi", "observed_compute", "pred_compute", "lo_compute", "hi_compute")},
         "log10_error": "decades of compute", "median_abs_log10_error": "decades of compute"}
LONG_TABLE = 30  # a table with more rows is split into one collapsed block per group (no script to filter with)


def fmt(x) -> str:
    """The one number format of the report: integers as is, floats to 3 significant digits."""
    if x is None or x is pd.NA:
        return DASH
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if math.isnan(float(x)):
            return DASH
        return f"{float(x):.3g}"  # infinity prints as inf
    return str(x)


def display(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Cells as the report prints them: only ``columns`` that exist, each cell through :func:`fmt`;
    a multiple (MULTIPLES) with "×" after it."""
    cols = [c for c in columns if c in df.columns]
    out = pd.DataFrame(index=range(len(df)))
    for c in cols:
        s = df[c]
        if pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = [DASH if pd.isna(v) else str(int(v)) for v in s]
        else:
            out[c] = [fmt(v) if not (isinstance(v, float) and math.isnan(v)) else DASH for v in s.tolist()]
        if c in MULTIPLES:
            out[c] = [v if v == DASH or not _looks_numeric(v) else v + TIMES for v in out[c]]
    return out


def heading(column: str, units: dict | None = None) -> str:
    """A table's column header: the CSV's column name and its unit, "mae (points)"."""
    unit = (units or {}).get(column, UNITS.get(column))
    return f"{column} ({unit})" if unit else column


def read_csv(path: Path) -> pd.DataFrame | None:
    """A report input, or None when the stage that writes it has not run."""
    if not path.exists():
        return None
    return pd.read_csv(path, keep_default_na=True)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class Page:
    """Parallel HTML and Markdown bodies, built block by block from the same content."""

    html: list = field(default_factory=list)  # strings, and _Image placeholders filled after drawing
    md: list[str] = field(default_factory=list)
    toc: list[tuple[int, str, str]] = field(default_factory=list)
    jobs: list = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str) -> None:
        self.toc.append((level, text, anchor))
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.md.append(f'{"#" * level} {text}\n')

    def para(self, text: str, cls: str | None = None) -> None:
        klass = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{klass}>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def bullets(self, items: list[str]) -> None:
        if not items:
            return
        self.html.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>")
        self.md.append("\n".join(f"- {t}" for t in items) + "\n")

    def note(self, text: str) -> None:
        self.para(text, cls="note")

    def table(self, cells: pd.DataFrame, source: str, caption: str | None = None, group: str | None = None,
              flag: str | None = None, units: dict | None = None, wrap: bool = False) -> None:
        """``cells`` are strings (see :func:`display`); ``source`` names the CSV they came from.

        ``group``: a column to split a table longer than LONG_TABLE rows by, one collapsed block per
        value (the page has no script, so "filtering" is opening the block you want).
        ``flag``: a column whose non-empty cells mark their row (highlighted in the HTML).
        ``units``: column -> unit for this table's headers (beside :data:`UNITS`).
        ``wrap``: the table fits the page's width, its text cells wrapped (no horizontal scroll).
        """
        if group and group in cells.columns and len(cells) > LONG_TABLE and cells[group].nunique() > 1:
            for value, sub in cells.groupby(group, sort=False):
                with self.details(f"{caption or source}: {group} = {value} ({len(sub)} rows)"):
                    self.table(sub.reset_index(drop=True), source, caption, flag=flag, units=units, wrap=wrap)
            return
        cols = list(cells.columns)
        numeric = {c for c in cols if cells[c].map(_looks_numeric).all() and len(cells)}
        heads = [heading(c, units) for c in cols]
        head = "".join(f"<th>{html.escape(c)}" + (f' <span class="unit">{html.escape(h[len(c) + 1:])}</span>'
                                                   if h != c else "") + "</th>" for c, h in zip(cols, heads))
        body = []
        for row in cells.itertuples(index=False):
            # in a table that wraps, a long name (a task of a benchmark suite) may break after its underscores
            text = [html.escape(v).replace("_", "_<wbr>") if wrap and len(v) > 16 else html.escape(v) for v in row]
            tds = "".join(f'<td class="num">{html.escape(v)}</td>' if c in numeric else
                          f'<td class="long">{t}</td>' if len(v) > 60 else f"<td>{t}</td>"
                          for c, v, t in zip(cols, row, text))
            marked = flag in cols and row[cols.index(flag)] not in ("", DASH)
            body.append(f'<tr class="flag">{tds}</tr>' if marked else f"<tr>{tds}</tr>")
        cap = f"<caption>{html.escape(caption)} <span class=src>source: {html.escape(source)}</span></caption>" \
            if caption else f"<caption><span class=src>source: {html.escape(source)}</span></caption>"
        klass = ' class="wrap"' if wrap else ""
        self.html.append(f'<div class="tbl"><table{klass} data-source="{html.escape(source)}">{cap}'
                         f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
        lines = [f"<!-- table source={source} -->"]
        lines.append(f"*{caption}* (source: `{source}`)\n" if caption else f"(source: `{source}`)\n")
        lines.append("| " + " | ".join(heads) + " |")
        lines.append("|" + "|".join("---:" if c in numeric else "---" for c in cols) + "|")
        for row in cells.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
        self.md.append("\n".join(lines) + "\n")

    def figure(self, path: Path, func, args: tuple, alt: str, caption: str) -> None:
        """A figure drawn by ``func(*args, path)`` (later, see :meth:`draw`), embedded in the HTML as a
        data URI and linked from the Markdown as ``plots/<name>``."""
        if any(Path(p).name == Path(path).name for _, _, p in self.jobs):
            raise CapcastError(f"two figures of the report would be one file, plots/{Path(path).name} ({alt!r} and "
                               "another); give the targets, splits or suites names that differ in letters or digits")
        self.jobs.append((func, args, path))
        self.html.append(_Image(path, alt, caption))
        self.md.append(f"![{alt}](plots/{path.name})\n\n*{caption}*\n")

    def draw(self, processes: int = 1) -> None:
        """Draw every figure: in ``processes`` forked workers (each figure is independent)."""
        global _JOBS
        _JOBS = self.jobs
        try:
            if processes > 1 and len(self.jobs) > 1 and "fork" in mp.get_all_start_methods():
                with mp.get_context("fork").Pool(min(processes, len(self.jobs))) as pool:
                    pool.map(_draw_job, range(len(self.jobs)), chunksize=1)
            else:
                for i in range(len(self.jobs)):
                    _draw_job(i)
        finally:
            _JOBS = []

    def details(self, summary: str) -> "_Details":
        return _Details(self, summary)

    def render_html(self, title: str) -> str:
        toc = "".join(f'<li class="l{lvl}"><a href="#{a}">{html.escape(t)}</a></li>' for lvl, t, a in self.toc if lvl <= 3)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
                f"<nav><b>Contents</b><ul>{toc}</ul></nav>\n<main>\n" + "\n".join(map(str, self.html))
                + "\n</main>\n</body></html>\n")

    def render_md(self) -> str:
        return "\n".join(self.md)


_JOBS: list = []


def _draw_job(i: int) -> None:
    func, args, path = _JOBS[i]
    func(*args, path)


@dataclass
class _Image:
    path: Path
    alt: str
    caption: str

    def __str__(self) -> str:
        data = base64.b64encode(self.path.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}">'
                f"<figcaption>{html.escape(self.caption)}</figcaption></figure>")


class _Details:
    def __init__(self, page: Page, summary: str):
        self.page, self.summary = page, summary

    def __enter__(self):
        self.page.html.append(f"<details><summary>{html.escape(self.summary)}</summary>")
        self.page.md.append(f"<details><summary>{self.summary}</summary>\n")
        return self.page

    def __exit__(self, *exc):
        self.page.html.append("</details>")
        self.page.md.append("</details>\n")
        return False


def _looks_numeric(v: str) -> bool:
    if v == DASH:
        return True
    try:
        float(v.removesuffix(TIMES))
        return True
    except ValueError:
        return False


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;
 line-height:1.45;display:flex;background:#fafafa}
nav{position:sticky;top:0;height:100vh;overflow:auto;width:15rem;flex:none;padding:1rem;background:#f0f0f0;
 font-size:.85rem;box-sizing:border-box}
nav ul{list-style:none;padding-left:0;margin:.4rem 0} nav li.l3{padding-left:1rem} nav a{color:#0b5394;text-decoration:none}
main{padding:1rem 2rem;max-width:75rem;min-width:0}
h1{margin-top:.3rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0 1rem} caption{text-align:left;font-size:.8rem;color:#555;
 padding:.2rem 0} th,td{border:1px solid #d5d5d5;padding:.15rem .45rem;text-align:left}
th{background:#eee} td{white-space:nowrap} td.long{white-space:normal;min-width:20rem;font-size:.76rem}
td.num{text-align:right;font-variant-numeric:tabular-nums} tbody tr:nth-child(even){background:#f4f4f4}
tbody tr.flag td{background:#fcf3dc}
.unit{font-weight:normal;font-size:.7rem;color:#555}
table.wrap{width:100%;font-size:.78rem} table.wrap td{white-space:normal} table.wrap td.long{min-width:0}
table.wrap td.num{white-space:nowrap}
.tbl{overflow-x:auto} .src{font-family:ui-monospace,monospace;color:#777}
figure{margin:1rem 0} img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
figcaption{font-size:.8rem;color:#555} .note{color:#8a6d3b;background:#fcf8e3;padding:.3rem .6rem;border-radius:3px}
.lead{font-size:1.02rem} details{margin:.5rem 0 1rem} summary{cursor:pointer;color:#0b5394}
"""


def missing(page: Page, rep, level: int, title: str, anchor: str, note: str) -> None:
    """A section whose input is absent: the pipeline's report says which stage writes it; a report built from
    other inputs (a family forecast) leaves the section out, since no stage of its own would write it."""
    if rep.cfg.pipeline_outputs:
        page.heading(level, title, anchor)
        page.note(note)
