"""Build the report: choose the methods once, run the sections in order, draw the figures, render twice."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import scores
from pipeline.report.evidence import EVIDENCE_COLUMNS, choose_methods
from pipeline.report.inputs import ReportConfig, ReportInput
from pipeline.report.page import Page
from pipeline.report.sections import SECTIONS, Report


def build(inp: ReportInput, cfg: ReportConfig | None = None, out: Path | str = "reports") -> tuple[str, str]:
    """Write the report's plots and computed CSVs under ``out``; return (html, markdown).

    Works for any scores table and forecast: sections whose inputs are None say so.
    """
    cfg = cfg or ReportConfig()
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    if inp.forecast is not None:
        chosen, evidence = choose_methods(inp, cfg)
    else:
        chosen, evidence = pd.DataFrame(), pd.DataFrame(columns=EVIDENCE_COLUMNS)
    rep = Report(inp, cfg, out, chosen, evidence)
    page = Page()
    page.heading(1, cfg.title, "top")
    if cfg.pipeline_outputs:
        page.para("What each family will score at a target size and how sure that is, how the forecasting methods "
                  "did on backtests, how the families compare in compute efficiency, and which curves are emergent "
                  "or inverse. Every table names the CSV under reports/ (or data/) it was printed from; numbers are "
                  "those cells at 3 significant digits.")
    else:
        page.para("What the family will score at each target size and how sure that is, and how each forecasting "
                  "method did on the family's own ladder. Every table names the CSV beside this page it was printed "
                  "from; numbers are those cells at 3 significant digits.")
    for section in SECTIONS:
        section(page, rep)
    page.draw(cfg.processes)
    drawn = {Path(path).name for _, _, path in page.jobs}
    for stale in (out / "plots").glob("*.png"):  # figures of targets or splits no longer configured
        if stale.name not in drawn:
            stale.unlink()
    return page.render_html(cfg.title), page.render_md()


def write(inp: ReportInput, cfg: ReportConfig | None = None, out: Path | str = "reports") -> None:
    """:func:`build`, then ``out/index.html`` and ``out/forecast.md`` (atomically)."""
    out = Path(out)
    page_html, page_md = build(inp, cfg, out)
    scores.atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page_html, encoding="utf-8"))
    scores.atomic_write(out / "forecast.md", lambda tmp: Path(tmp).write_text(page_md, encoding="utf-8"))
