"""``python -m pipeline report``: the DVC stage (inputs under reports/, knobs from params.yaml)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import scores
from pipeline.cli import add_family_arguments, family_mode, family_request
from pipeline.forecasting.family import SPLIT, Request, Result, run
from pipeline.report.build import write
from pipeline.report.inputs import ReportConfig, ReportInput, config_from_params, load_inputs


def _main(argv) -> int:
    if family_mode(argv):  # --family: one family of any table at any (N, D), no params.yaml
        return main_report(argv)
    parser = argparse.ArgumentParser(prog="python -m pipeline report",
                                     description="reports/index.html, reports/forecast.md and plots")
    parser.add_argument("--scores", default="data/scores.parquet")
    parser.add_argument("--out-dir", default="reports", help="where the report goes")
    parser.add_argument("--in-dir", default=None, help="where the input CSVs are (default: --out-dir)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    inp = load_inputs(Path(args.scores), Path(args.in_dir) if args.in_dir else out)
    write(inp, config_from_params(args.params), out)
    print(f"wrote {out}/index.html and {out}/forecast.md")
    return 0


def report_inputs(res: Result, req: Request):
    """(ReportInput, ReportConfig) of a family forecast: the report package's inputs, no params.yaml."""
    rung = next((h for h in res.forecast["heldout"] if isinstance(h, str) and h), "")
    inp = ReportInput(scores=res.rows, forecast=res.forecast, curves=res.curves,
                      backtest=res.backtest if len(res.backtest) else None,
                      predictions=res.predictions if len(res.predictions) else None)
    cfg = ReportConfig(title=f"capcast: {req.family} forecast", heldout_splits=[SPLIT] if rung else [],
                       split_descriptions={SPLIT: f"the family's own ladder: every method fitted on the smaller rungs, "
                                                  f"scored on the held-out top rung ({rung})"} if rung else {})
    return inp, cfg


def main_report(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline report",
                                description="The HTML report of one family's forecast at target sizes (N, D).")
    add_family_arguments(p)
    p.add_argument("--out", required=True, help="folder for index.html, forecast.md and the plots")
    args = p.parse_args(argv)
    table, req = family_request(args)
    res = run(table, req)
    out = Path(args.out)
    write(*report_inputs(res, req), out)
    # the tables the report cites, beside it
    for name, frame in (("forecast.csv", res.forecast), ("forecast_curves.csv", res.curves),
                        ("backtest.csv", res.backtest), ("backtest_predictions.csv", res.predictions)):
        scores.write_csv(frame, out / name)
    print(f"wrote {out}/index.html and {out}/forecast.md ({len(res.forecast)} forecasts)")
    return 0
