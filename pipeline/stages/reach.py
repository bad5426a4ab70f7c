"""reach: how big must a model of this family be to reach a goal, and how sure is that?

    python -m pipeline reach --scores FILE --family F --goal TASK:METRIC=VALUE [--goal ...]
        [--tokens D | --tokens-per-param R] [--method auto|...] [--out FILE.csv]
    python -m pipeline reach --from-params      (params.yaml report.goals -> reports/reach.csv, for the report)

One line per goal: the smallest compute C and size N (on the recipe: a fixed D, D = R x N, or by
default the ladder's own) at which the forecast reaches the goal, its interval, and beside it the
same question asked of the family's own ladder with its top rung held out.  The work is
:mod:`pipeline.forecasting.reach`.
"""
from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from pipeline import files, params, scores
from pipeline.cli import Parser, calibration_for, check_level_and_bootstrap, run_cli, whole
from pipeline.config import MAX_BOOTSTRAP
from pipeline.errors import CapcastError
from pipeline.forecasting import reach

OUT = "reports/reach.csv"


def _parser() -> argparse.ArgumentParser:
    from pipeline.laws import METHODS

    p = Parser(prog="python -m pipeline reach", description=__doc__.split("\n")[0],
               epilog="Example: python -m pipeline reach --scores scores.csv --family my-ladder "
                      "--goal arc_challenge:acc=0.6 --tokens-per-param 20")
    p.add_argument("--scores", help="CSV or Parquet in the scores-table schema (required without --from-params)")
    p.add_argument("--family", help="the family whose ladder answers (required without --from-params)")
    p.add_argument("--goal", action="append", metavar="TASK:METRIC=VALUE",
                   help="the accuracy to reach, e.g. arc_challenge:acc=0.6 (repeatable)")
    p.add_argument("--tokens", type=float, help="the recipe: every size trains on D tokens (one number)")
    p.add_argument("--tokens-per-param", type=float, help="the recipe: D = R x N (e.g. 20); default: the ladder's own")
    methods = sorted(m for m in METHODS if m not in ("link", "observational", "observational_compute", "skills"))
    p.add_argument("--method", default="auto", choices=methods,
                   help="the law (default auto: the candidates weighted by what other ladders taught)")
    p.add_argument("--calibration", metavar="FILE", help="the ladder forecast table auto is learned from")
    p.add_argument("--loss", help="two_step: TASK:METRIC of the loss it goes through (default: the task's own)")
    p.add_argument("--chance", action="append", metavar="TASK=LEVEL[,...]",
                   help="random-guess level of a task the table does not give (repeatable)")
    p.add_argument("--suite", help="the suite of the family's rows, where it has several")
    p.add_argument("--num-fewshot", "--num_fewshot", dest="num_fewshot", type=int,
                   help="shots, where a task has rows with several")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--bootstrap", type=whole, default=200,
                   help=f"bootstrap resamples behind a law's own interval (at most {MAX_BOOTSTRAP})")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", help="write the answers here (CSV)")
    p.add_argument("--from-params", action="store_true",
                   help=f"the goals of params.yaml report.goals on data/scores.parquet, written to {OUT}")
    p.add_argument("--params-file", "--params", dest="params_file", default="params.yaml",
                   help="with --from-params: the params file")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"reach": _parser()}


def _main(argv) -> int:
    args = _parser().parse_args(argv)
    if args.from_params:
        return from_params(args)
    for flag in ("scores", "family", "goal"):
        if not getattr(args, flag):
            raise CapcastError(f"give --{flag} (or --from-params for the goals of params.yaml)")
    files.check_outputs([("--out", args.out)], [("--scores", args.scores)])
    goals = [reach.parse_goal(g) for g in args.goal]
    recipe = _recipe(args.tokens, args.tokens_per_param, "--tokens", "--tokens-per-param")
    table = scores.with_chance(scores.read(args.scores), scores.parse_chance(args.chance))
    req = _request(args.family, args, source=str(args.scores))
    out = reach.run(table, goals, req, recipe)
    for _, r in out.iterrows():
        print(reach.line(r))
    if args.out:
        scores.write_csv(out, Path(args.out))
    return 0


def _recipe(tokens, ratio, tokens_flag: str, ratio_flag: str):
    if tokens is not None and ratio is not None:
        raise CapcastError(f"give one recipe: {tokens_flag} D or {ratio_flag} R, not both")
    for flag, v in ((tokens_flag, tokens), (ratio_flag, ratio)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise CapcastError(f"{flag} must be > 0, got {v}")
    if tokens is not None:
        return reach.Recipe(tokens=float(tokens))
    return reach.Recipe(ratio=float(ratio)) if ratio is not None else None


def _request(fam: str, args, source: str, **over):
    from pipeline.forecasting.family import Request

    check_level_and_bootstrap(args)
    calibration = calibration_for(over.get("method", args.method), args.calibration, over.pop("calibration", None))
    fields = {"method": args.method, "loss": args.loss, "suite": args.suite, "num_fewshot": args.num_fewshot,
              "level": args.level, "n_bootstrap": args.bootstrap, "seed": args.seed, **over}
    return Request(fam, (), source=source, calibration=calibration, **fields)


def from_params(args) -> int:
    """params.yaml ``report.goals`` on the pipeline's scores table -> reports/reach.csv (the report's
    "How big to reach it"); level and seed are the forecast's."""
    from pipeline.stages.backtest import calibration_source

    every = params.read(args.params_file)
    goals = params.section_of(every, "report", args.params_file).get("goals") or []
    fc = params.section_of(every, "forecast", args.params_file)
    scores_path = args.scores or "data/scores.parquet"
    out_path = Path(args.out or OUT)
    files.check_outputs([("--out", out_path)], [("--scores", scores_path)])
    args.level, args.seed = float(fc.get("interval", 0.9)), int(fc.get("seed", 0))
    table = scores.read(scores_path)
    source = calibration_source(warn=True)
    rows = []
    for i, g in enumerate(goals):
        where = f"params.yaml report.goals[{i}]"
        goal = reach.parse_goal(g["goal"], f"{where}: goal")
        recipe = _recipe(g.get("tokens"), g.get("tokens_per_param"), f"{where}: tokens", f"{where}: tokens_per_param")
        req = _request(g["family"], args, source="data/scores.parquet", calibration=source,
                       method=g.get("method", "auto"), suite=g.get("suite"), loss=g.get("loss"),
                       num_fewshot=g.get("num_fewshot", fc.get("num_fewshot")))
        try:
            rows.append(reach.run(table, [goal], req, recipe))
        except CapcastError as exc:  # in params.yaml's words: the goal's own keys, not the flags
            raise CapcastError(re.sub(r"fix --(family|suite|num-fewshot|goal|loss)\b",
                                      lambda m: f"fix {where}.{m.group(1).replace('-', '_')}", str(exc))) from None
        print(reach.line(rows[-1].iloc[0]))
    import pandas as pd

    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=reach.COLUMNS)
    scores.write_csv(frame, out_path)
    print(f"wrote {out_path} ({len(frame)} goals)")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv)
