"""report stage: reports/index.html, reports/forecast.md and plots, from the tables the other stages wrote.

    python -m pipeline report [--scores data/scores.parquet] [--out reports] [--params-file params.yaml]
    python -m pipeline report --scores FILE --family F --params N[,N...] --tokens D[,D...] --out DIR

The rendering is the report package's (:mod:`pipeline.report`); here are its inputs (the CSVs under
reports/, the display knobs of params.yaml ``report:``) and the family mode, which builds one
family's forecast (:mod:`pipeline.forecasting.family`) and hands it to the same renderer.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import files, params, scores
from pipeline.cli import Parser, add_family_arguments, family_request, run_cli, two_modes
from pipeline.forecasting.family import SPLIT, Request, Result, run
from pipeline.report.build import write
from pipeline.report.inputs import ReportConfig, ReportInput, load_inputs


def stage_parser() -> argparse.ArgumentParser:
    """The DVC stage: the report of the CSVs under reports/."""
    p = Parser(prog="python -m pipeline report",
               description="DVC-stage mode (no --family): reports/index.html, reports/forecast.md "
                           "and plots, from the tables the other stages wrote.")
    p.add_argument("--scores", metavar="FILE", default="data/scores.parquet",
                   help="the scores table (default: data/scores.parquet)")
    p.add_argument("--out", "--out-dir", "--output_path", dest="out", metavar="DIR", default="reports",
                   help="where the report goes (default: reports)")
    p.add_argument("--in-dir", metavar="DIR", default=None, help="where the input CSVs are (default: --out)")
    p.add_argument("--params-file", "--params", dest="params_file", metavar="FILE", default="params.yaml",
                   help="the params file of the report: section (default: params.yaml; --params is the old "
                        "spelling, kept in this mode)")
    return p


def family_parser() -> argparse.ArgumentParser:
    """The family mode: the report of one family's forecast."""
    p = Parser(prog="python -m pipeline report",
               description="Family mode (--family): the HTML report of one family's forecast at "
                           "target sizes (N, D); no params.yaml.")
    add_family_arguments(p)
    p.add_argument("--out", "--out-dir", "--output_path", dest="out", metavar="DIR", required=True,
                   help="folder for index.html, forecast.md, the plots and the tables they print")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"report": stage_parser(), "report --family": family_parser()}


def _main(argv) -> int:
    return two_modes(argv, stage_parser, family_parser, run_stage, main_report)


def run_stage(args) -> int:
    """The DVC-stage mode: the report of the stages' outputs."""
    out = Path(args.out)
    files.check_into(out, REPORT_FILES, "--out", [("--scores", args.scores)])
    inp = load_inputs(Path(args.scores), Path(args.in_dir) if args.in_dir else out)
    write(inp, config_from_params(args.params_file), out)
    print(f"wrote {out}/index.html and {out}/forecast.md")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)


# what the report writes into its folder (besides plots/), and what the family mode adds
REPORT_FILES = ["index.html", "forecast.md", "at_a_glance.csv", "method_evidence.csv", "data_summary.csv",
                "trends_labels.csv"]
FAMILY_TABLES = ["forecast.csv", "forecast_curves.csv", "backtest.csv", "backtest_predictions.csv",
                 "two_step_diagnostics.csv"]


def config_from_params(path: str | Path = "params.yaml") -> ReportConfig:
    """The DVC stage's configuration: params.yaml ``report:`` plus split descriptions and report
    suites (the other stages' sections, read with it: absent ones are optional text)."""
    every = params.read(path)
    cfg = params.section_of(every, "report", path)
    backtest = every.get("backtest") or {}
    splits = backtest.get("splits") or {}
    emergence = ((every.get("trends") or {}).get("emergence") or {})
    overview = {k: cfg[k] for k in ("suite", "plot_tasks", "plot_metric", "num_fewshot") if k in cfg} or None
    return ReportConfig(
        default_method=cfg.get("default_method"),
        heldout_splits=list(cfg.get("heldout_splits") or []),
        max_extrapolation=float(cfg.get("max_extrapolation", 10.0)),
        min_evidence=int(cfg.get("min_evidence", 3)),
        overview=overview if overview and "suite" in overview else None,
        family_curves=list(cfg.get("family_curves") or []),
        max_trend_plots=int(cfg.get("max_trend_plots", 24)),
        processes=int(cfg.get("processes", 2)),
        split_descriptions={name: str(sp.get("description", "")) for name, sp in splits.items()},
        backtest_level=float(backtest.get("level", 0.9)),
        report_suites=list(emergence.get("report_suites") or []),
        pipeline_outputs=True,
        calibration_ladders=calibration_ladders(every.get("ladders") or {}),
    )


def calibration_ladders(cfg: dict) -> int | None:
    """How many ladders the calibration table holds (its manifest), for the words beside auto."""
    import json

    from pipeline.ladders.calibration import DEFAULT_PATH, manifest_path

    try:
        return int(json.loads(manifest_path(cfg.get("forecasts", DEFAULT_PATH)).read_text())["ladders"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def report_inputs(res: Result, req: Request):
    """(ReportInput, ReportConfig) of a family forecast: the report package's inputs, no params.yaml."""
    rung = next((h for h in res.forecast["heldout"] if isinstance(h, str) and h), "")
    inp = ReportInput(scores=res.rows, forecast=res.forecast, curves=res.curves, two_step=res.diagnostics,
                      backtest=res.backtest if len(res.backtest) else None,
                      predictions=res.predictions if len(res.predictions) else None)
    ladders = calibration_ladders({"forecasts": req.calibration.path}) if req.calibration is not None else None
    cfg = ReportConfig(title=f"capcast: {req.family} forecast", heldout_splits=[SPLIT] if rung else [],
                       calibration_ladders=ladders,
                       split_descriptions={SPLIT: f"the family's own ladder: every method fitted on the smaller rungs, "
                                                  f"scored on the held-out top rung ({rung})"} if rung else {})
    return inp, cfg


def main_report(argv) -> int:
    args = family_parser().parse_args(argv)
    out = Path(args.out)
    files.check_into(out, REPORT_FILES + FAMILY_TABLES, "--out", [("--scores", args.scores)])
    table, req = family_request(args)
    res = run(table, req)
    # the tables the report cites, beside it (written with it, or not at all)
    write(*report_inputs(res, req), out, tables=dict(zip(FAMILY_TABLES, (res.forecast, res.curves, res.backtest,
                                                                          res.predictions, res.diagnostics))))
    made = int(res.forecast["predicted"].notna().sum())
    print(f"wrote {out}/index.html and {out}/forecast.md ({made} of {len(res.forecast)} task x target forecasts made)")
    return 0
