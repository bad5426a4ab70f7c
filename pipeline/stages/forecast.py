"""forecast stage: what each family will score at a target size, and how the families compare.

Reads ``data/scores.parquet`` and ``params.yaml: forecast``; writes

* ``reports/forecast.csv`` — one row per target x task x method: the predicted metric and its
  interval (``forecast.interval``, 90% by default), at the target's N, D and C = 6ND;
* ``reports/forecast_curves.csv`` — the same laws, fitted on the same rows, evaluated on a grid of
  compute from the family's smallest model to the target: the fitted curves the report draws;
* ``reports/two_step_diagnostics.csv`` — per two-step forecast, its step-1 loss fit and step-2 link
  with their points and the target (:mod:`pipeline.forecasting.diagnostics`);
* ``reports/family_offsets.csv`` and ``reports/capability.csv`` — the family comparison: a
  capability score per model (first principal component of the suite's benchmark accuracies,
  the "observational" view of Ruan et al. 2024) regressed on log10 compute with one shared slope
  and one intercept per family; family X reaches the reference family's capability at
  k = 10^((b_ref - b_X) / slope) times the compute;
* ``reports/family_skills.csv`` — the skill law's family comparison
  (:mod:`pipeline.forecasting.family_skills`): each family's shift per latent skill and the compute
  multiplier it implies, with intervals and the family's leave-one-family-out error;
* ``reports/forecast/<target>/<TASK>.<predicted|lower|upper>.json`` — auto's forecasts as DVC
  metrics (:func:`pipeline.forecasting.scoring.forecast_metrics`), so that ``dvc exp show``
  compares them across experiments.

Every forecast's ``note`` holds its caveats (:mod:`pipeline.forecasting.caveats`): at chance or no
rise, no task losses, interpolation or how far it extrapolates, and why a method failed.

Every law is fitted on *all* rows of the target's suite and family (the backtest stage judges
the same laws on held-out models).  Deterministic: the only randomness (bootstrap intervals
inside the laws) is seeded from ``forecast.seed``; floats are written with 6 significant digits.

With ``--family F --params N --tokens D`` it forecasts one family of any scores table instead
(:mod:`pipeline.forecasting.family`; no params.yaml).  The work is :mod:`pipeline.forecasting`'s:
``targets`` (the laws at the targets), ``comparison`` (the family offsets), ``family_skills``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import files, params, scores
from pipeline.cli import Parser, add_family_arguments, family_request, run_cli, two_modes
from pipeline.forecasting import family_skills
from pipeline.forecasting.comparison import family_comparison
from pipeline.forecasting.family import describe, line, run
from pipeline.forecasting.scoring import forecast_metrics
from pipeline.forecasting.targets import forecast_all
from pipeline.laws.policy import AUTO as DEFAULT_METHOD  # the metrics' method


def stage_parser() -> argparse.ArgumentParser:
    """The DVC stage: every target of params.yaml ``forecast.targets``."""
    p = Parser(prog="python -m pipeline forecast",
               description="DVC-stage mode (no --family): " + __doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("--scores", metavar="FILE", default="data/scores.parquet",
                   help="the scores table (default: data/scores.parquet)")
    p.add_argument("--out", "--out-dir", "--output_path", dest="out", metavar="DIR", default="reports",
                   help="folder for forecast.csv, forecast_curves.csv, the family comparisons and forecast/ (the DVC "
                        "metrics of the forecasts); default: reports")
    p.add_argument("--params-file", "--params", dest="params_file", metavar="FILE", default="params.yaml",
                   help="the params file whose forecast: section lists the targets (default: params.yaml; --params "
                        "is the old spelling, kept in this mode)")
    p.add_argument("--predictions", metavar="FILE", default="reports/backtest_predictions.csv",
                   help="the backtest stage's predictions (family_skills.csv reports each family's held-out error)")
    return p


def family_parser() -> argparse.ArgumentParser:
    """The family mode: one family of any scores table at any (N, D)."""
    p = Parser(prog="python -m pipeline forecast",
               description="Family mode (--family): forecast one family of a scores table at target "
                           "sizes (N, D); no params.yaml.")
    add_family_arguments(p)
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", help="write the forecast table here (CSV)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode (tests/test_cli.py checks them all)."""
    return {"forecast": stage_parser(), "forecast --family": family_parser()}


def _main(argv) -> int:
    return two_modes(argv, stage_parser, family_parser, run_stage, main_forecast)


def run_stage(args) -> int:
    """The DVC-stage mode: every target of the params file's forecast: section."""
    files.check_into(args.out, ["forecast.csv", "forecast_curves.csv", "two_step_diagnostics.csv", "family_offsets.csv",
                     "capability.csv", "family_skills.csv"], "--out", [("--scores", args.scores),
                                                                       ("--predictions", args.predictions)])
    cfg = params.load("forecast", args.params_file)
    out = Path(args.out)
    table = scores.read(args.scores)
    interval = float(cfg.get("interval", 0.9))
    predictions = family_skills.read_predictions(args.predictions)
    from pipeline.stages.backtest import calibration_source, write_metrics

    policy = calibration_source(warn=True).policy(interval)
    fc, curves, diags, skills = forecast_all(table, cfg, extra=lambda: family_skills.family_skills(
        table, cfg.get("family_skills"), interval, int(cfg.get("seed", 0)), predictions), policy=policy)
    scores.write_csv(fc, out / "forecast.csv")
    scores.write_csv(curves, out / "forecast_curves.csv")
    scores.write_csv(diags, out / "two_step_diagnostics.csv")
    offsets, caps = family_comparison(table, cfg, interval)
    scores.write_csv(offsets, out / "family_offsets.csv")
    scores.write_csv(caps, out / "capability.csv")
    scores.write_csv(skills, out / "family_skills.csv")
    write_metrics(forecast_metrics(fc, DEFAULT_METHOD), out / "forecast")
    print(f"wrote {out}/forecast.csv ({len(fc)} rows, {int(fc['predicted'].isna().sum())} skipped), "
          f"forecast_curves.csv, two_step_diagnostics.csv, family_offsets.csv ({len(offsets)} rows), capability.csv, "
          f"family_skills.csv ({len(skills)} rows), forecast/ ({DEFAULT_METHOD}'s forecasts as DVC metrics)")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, sys.argv[1:] if argv is None else argv)


def main_forecast(argv) -> int:
    args = family_parser().parse_args(argv)
    files.check_outputs([("--out", args.out)], [("--scores", args.scores)])
    table, req = family_request(args)
    res = run(table, req)
    print(describe(res, req))
    for _, r in res.forecast.iterrows():
        print(line(r, req.level))
    if args.out:
        scores.write_csv(res.forecast, Path(args.out))
    return 0
