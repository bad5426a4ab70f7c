"""What a report is built from: tables (:class:`ReportInput`) and a few display knobs (:class:`ReportConfig`).

Neither reads params.yaml: the DVC stage fills them from the repository's files
(:func:`load_inputs`; :func:`pipeline.stages.report.config_from_params`); another caller (a user's own scores table and
family) builds them directly, with only ``scores`` and ``forecast`` given, and every section
whose input is absent says so instead of failing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline import scores
from pipeline.report.page import read_csv, read_json


@dataclass
class ReportInput:
    """The tables of one report; each is the CSV of the same name under reports/ (None: not available).

    ``scores`` is a validated scores table (pipeline.scores). ``forecast`` and ``curves`` have the
    columns of pipeline.forecasting.targets (FORECAST_COLUMNS, CURVE_COLUMNS); ``backtest`` and ``predictions``
    those of the backtest stage (extra columns, methods and splits are fine).
    """

    scores: pd.DataFrame
    forecast: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    offsets: pd.DataFrame | None = None
    capability: pd.DataFrame | None = None
    family_skills: pd.DataFrame | None = None  # reports/family_skills.csv (pipeline.forecasting.family_skills)
    backtest: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    trends: pd.DataFrame | None = None
    trends_backtest: pd.DataFrame | None = None
    trends_summary: pd.DataFrame | None = None  # reports/trends_backtest_summary.csv: one row per split + ALL
    emergence: pd.DataFrame | None = None
    crossing: pd.DataFrame | None = None  # reports/trends_backtest_emergence.csv: crossing backtest, case x route
    crossing_summary: pd.DataFrame | None = None  # reports/trends_backtest_crossing.csv
    confusion: pd.DataFrame | None = None  # reports/trends_backtest_confusion.csv: label small x label all
    two_step: pd.DataFrame | None = None  # reports/two_step_diagnostics.csv (pipeline.forecasting.diagnostics)
    reach: pd.DataFrame | None = None  # reports/reach.csv (pipeline.forecasting.reach): how big to reach each goal
    pred_suites: pd.DataFrame | None = None  # (row, suite) of predictions, filled on demand (evidence.py)


Inputs = ReportInput  # the name the stage used before the package split


@dataclass
class ReportConfig:
    """Display knobs; every default works for any scores table and family list."""

    title: str = "capcast: forecast report"
    default_method: str | None = None  # the method shown for every forecast (None: the first forecast method)
    heldout_splits: list = field(default_factory=list)  # backtest splits drawn per task
    max_extrapolation: float = 10.0  # flag forecasts beyond this multiple of the family's largest compute
    min_evidence: int = 3  # flag a method choice resting on fewer same-family held-out predictions
    overview: dict | None = None  # {suite, plot_tasks, plot_metric, num_fewshot}; None: from the forecast
    family_curves: list = field(default_factory=list)  # [{suite, families, metric, num_fewshot}]
    max_trend_plots: int = 24
    processes: int = 2
    split_descriptions: dict = field(default_factory=dict)  # backtest split -> one line
    backtest_level: float | None = None  # the backtests' interval level (None: the forecasts')
    report_suites: list = field(default_factory=list)  # suites whose emergence crossings are listed too
    pipeline_outputs: bool = False  # the DVC stage's report: its text may point at params.yaml and reports/metrics/
    calibration_ladders: int | None = None  # how many ladders auto's policy was learned from (said beside auto)


def load_inputs(scores_path: Path, reports: Path) -> ReportInput:
    """The stage's inputs: the scores table and the CSVs the other stages wrote under ``reports``."""
    trends_summary = read_csv(reports / "trends_backtest_summary.csv")
    if trends_summary is None:  # a trends stage from before the summary CSV: its metrics JSON, as rows
        trends_summary = _metrics_rows(read_json(reports / "trends_metrics.json"))
    return ReportInput(
        scores=scores.read(scores_path),
        forecast=read_csv(reports / "forecast.csv"),
        curves=read_csv(reports / "forecast_curves.csv"),
        two_step=read_csv(reports / "two_step_diagnostics.csv"),
        reach=read_csv(reports / "reach.csv"),
        offsets=read_csv(reports / "family_offsets.csv"),
        capability=read_csv(reports / "capability.csv"),
        family_skills=read_csv(reports / "family_skills.csv"),
        backtest=read_csv(reports / "backtest.csv"),
        predictions=read_csv(reports / "backtest_predictions.csv"),
        trends=read_csv(reports / "trends.csv"),
        trends_backtest=read_csv(reports / "trends_backtest.csv"),
        trends_summary=trends_summary,
        emergence=read_csv(reports / "trends_emergence.csv"),
        crossing=read_csv(reports / "trends_backtest_emergence.csv"),
        crossing_summary=read_csv(reports / "trends_backtest_crossing.csv"),
        confusion=read_csv(reports / "trends_backtest_confusion.csv"),
    )


def _metrics_rows(metrics: dict | None) -> pd.DataFrame | None:
    if not metrics:
        return None
    top = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    rows = [{"split": "ALL", **top}]
    for name, vals in (metrics.get("splits") or {}).items():
        rows.append({"split": name, **{k: v for k, v in vals.items() if not isinstance(v, dict)}})
    return pd.DataFrame(rows)
