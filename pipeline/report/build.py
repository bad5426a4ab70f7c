"""Build the report: choose the methods once, run the sections in order, draw the figures, render twice."""
from __future__ import annotations

import os
import shutil
import tempfile
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
    remove_stale_figures(out / "plots", {Path(path).name for _, _, path in page.jobs})
    return page.render_html(cfg.title), page.render_md()


def write(inp: ReportInput, cfg: ReportConfig | None = None, out: Path | str = "reports", tables=None) -> None:
    """:func:`build`, ``index.html``, ``forecast.md`` and ``tables`` ({file name: frame}, written
    beside them) in a temporary folder inside ``out``, then moved into ``out`` file by file (each
    a rename; ``index.html`` last).  A failure while building leaves ``out`` as it was: no half-built
    report.  Figures of targets or splits no longer configured are removed; nothing else in ``out``
    is touched."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{BUILD_PREFIX}*"):  # left by a killed build (older than this process)
        if stale.is_dir() and stale.stat().st_mtime < scores._STARTED:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=out))
    try:
        page_html, page_md = build(inp, cfg, tmp)
        (tmp / "forecast.md").write_text(page_md, encoding="utf-8")
        (tmp / "index.html").write_text(page_html, encoding="utf-8")
        for name, frame in (tables or {}).items():
            scores.write_csv(frame, tmp / name)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)


BUILD_PREFIX = ".report-build-"


def remove_stale_figures(plots: Path, drawn: set) -> None:
    """Delete the figures of ``plots`` not in ``drawn``: of targets or splits no longer configured."""
    for stale in plots.glob("*.png"):
        if stale.name not in drawn:
            stale.unlink()


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished build into ``out``: the figures (and the old figures no longer drawn away),
    the tables, then forecast.md and index.html."""
    (out / "plots").mkdir(exist_ok=True)
    drawn = {p.name for p in (tmp / "plots").glob("*.png")}
    for name in sorted(drawn):
        os.chmod(tmp / "plots" / name, 0o644)
        os.replace(tmp / "plots" / name, out / "plots" / name)
    remove_stale_figures(out / "plots", drawn)
    last = ("forecast.md", "index.html")
    for path in sorted(p for p in tmp.iterdir() if p.is_file() and p.name not in last) + [tmp / n for n in last]:
        os.chmod(path, 0o644)
        os.replace(path, out / path.name)