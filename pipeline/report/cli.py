"""``python -m pipeline report``: the DVC stage (inputs under reports/, knobs from params.yaml)."""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.report.build import write
from pipeline.report.inputs import config_from_params, load_inputs


def _main(argv) -> int:
    from pipeline.forecasting import family as ladder

    if ladder.user_mode(argv):  # --family: one family of any table at any (N, D), no params.yaml
        return ladder.main_report(argv)
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
