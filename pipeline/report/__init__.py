"""report stage: what a researcher opens after `dvc repro` (reports/index.html, reports/forecast.md, plots).

The report only *reads* tables other stages wrote and renders them twice from the same cells:
Markdown (``forecast.md``, images as files under ``plots/``) and one self-contained HTML page
(``index.html``: images embedded as data URIs, inline CSS, no script, no font or network
reference).  Every number printed is a cell of the CSV named next to its table.

Modules: ``inputs`` (ReportInput: the tables; ReportConfig: display knobs), ``evidence`` (which
method to show, from held-out models of the same family), ``sections`` (the page, top to bottom),
``figures`` (the plots, drawn with ``plotting``'s conventions), ``page`` (HTML/Markdown rendering,
the number format), ``build``.  Rendering only: the stage that reads params.yaml and the CSVs, and
the family mode, are :mod:`pipeline.stages.report`.

Any caller with a scores table and a forecast table builds a report without params.yaml::

    from pipeline.report import ReportInput, ReportConfig, write
    write(ReportInput(scores=table, forecast=fc, curves=curves), ReportConfig(), "my_report")
"""
from pipeline.report.build import build, write
from pipeline.report.evidence import choose_methods, family_heldout, glance_table, method_stats
from pipeline.report.figures import (plot_accuracy_vs_compute, plot_backtest_mae, plot_family_capability,
                                     plot_family_curves, plot_heldout, plot_target, plot_trend_curves)
from pipeline.report.inputs import Inputs, ReportConfig, ReportInput, load_inputs
from pipeline.report.page import DASH, Page, display, fmt
from pipeline.report.sections import FLAGGED, SECTIONS

__all__ = ["build", "write", "choose_methods", "family_heldout", "glance_table", "method_stats", "Inputs",
           "ReportConfig", "ReportInput", "load_inputs", "DASH", "Page", "display", "fmt",
           "FLAGGED", "SECTIONS", "plot_accuracy_vs_compute", "plot_backtest_mae", "plot_family_capability",
           "plot_family_curves", "plot_heldout", "plot_target", "plot_trend_curves"]
