"""Ingest published results into one compact, cited scores table (``data/published/scores.csv``).

    python -m pipeline ingest --from ../shared/data/external [--out data/published/scores.csv]
    python -m pipeline ingest lm-eval DIR... --out FILE   (your own lm-eval output folders)

The readers of the published files are :mod:`pipeline.sources.published` (``--from github``
fetches the same files from the upstream repositories at their pinned commits); ``ingest
lm-eval`` is :mod:`pipeline.sources.lm_eval`.

Not a DVC stage: its inputs live outside the repository.  Its output is committed, and the
pipeline starts from it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import files, scores
from pipeline.cli import Parser, progress, run_cli
from pipeline.sources import lm_eval
from pipeline.sources.published import ingest


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pipeline ingest", description=__doc__.split("\n")[0],
               epilog="python -m pipeline ingest lm-eval DIR... --out FILE: import your own "
                      "lm-eval output folders (see --help there)")
    p.add_argument("--from", dest="root", default="../shared/data/external",
                   help="local copy of the published files (shared/data/external), or 'github'")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", default="data/published/scores.csv",
                   help="the scores table to write (default: data/published/scores.csv)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"ingest": parser(), "ingest lm-eval": lm_eval_parser()}


def _main(argv) -> int:
    if argv and argv[0] == "lm-eval":  # your own lm-eval output folders (pipeline/sources/lm_eval.py)
        return lm_eval_main(argv[1:])
    args = parser().parse_args(argv)
    files.check_outputs([("--out", args.out)])
    table, skipped = ingest(args.root)
    scores.write(table, args.out, origin=f"ingest --from {args.root}")
    summary = table.groupby("suite").agg(rows=("value", "size"), models=("model", "nunique"), tasks=("task", "nunique"))
    print(summary.to_string())
    print(f"wrote {len(table)} rows to {args.out}")
    if skipped:
        print(f"set aside {len(skipped)} models without the facts a law needs:", file=sys.stderr)
        for s in skipped:
            print(f"  {s}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ ingest lm-eval
def lm_eval_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pipeline ingest lm-eval",
               description="lm-eval output folders -> a scores table (suite lm_eval)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders lm_eval --output_path wrote, or results JSONs")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", required=True,
                   help="the scores table to write (.csv or .parquet)")
    p.add_argument("--family", help="family name of the models (default: the families registry)")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument("--tokens", type=float, help="training tokens D of every checkpoint")
    tokens.add_argument("--tokens-per-param", type=float, help="D = R x N (e.g. 20, Chinchilla)")
    tokens.add_argument("--tokens-per-step", type=float, help="D = S x step (revision=stepN)")
    p.add_argument("--params", help="parameters N, where lm-eval recorded none: N, or MODEL=N,MODEL=N")
    p.add_argument("--chance", action="append", metavar="TASK=LEVEL[,...]",
                   help="random-guess level of a task the samples do not give (repeatable)")
    p.add_argument("--tokenizer", help="tokenizer (hub id or folder, read locally) for nll_token, when the "
                                       "checkpoints' own is not on this machine")
    p.add_argument("--suite", default=lm_eval.SUITE, help=f"suite of the rows (default {lm_eval.SUITE})")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="read the runs in N forked processes (the same table whatever N; default 1)")
    return p


def lm_eval_main(argv) -> int:
    """``python -m pipeline ingest lm-eval``: lm-eval output folders -> a scores table."""
    args = lm_eval_parser().parse_args(argv)
    out = Path(args.out)
    if args.processes < 1:
        raise lm_eval.LmEvalError(f"--processes {args.processes}: give 1 or more")
    if out.suffix not in (".csv", ".parquet"):
        raise lm_eval.LmEvalError(f"--out {out}: give a .csv or .parquet file")
    files.check_outputs([("--out", out)], [("PATH", p) for p in args.paths])
    facts = lm_eval.Facts(args.family, args.tokens, args.tokens_per_param, args.tokens_per_step, lm_eval.parse_params(args.params),
                  args.tokenizer, scores.parse_chance(args.chance), args.suite)
    with progress("ingest lm-eval", "file") as bars:
        table = lm_eval.import_runs(args.paths, facts, progress=bars, processes=args.processes)
    scores.clean_stale_temps(out.parent, names=[out.name])
    scores.write(table, out, origin=f"ingest lm-eval -> {out}")
    ck = table.drop_duplicates(["model", "step"])
    print(f"wrote {len(table)} rows to {out}: {ck['model'].nunique()} models, {len(ck)} checkpoints, "
          f"{table['task'].nunique()} tasks, from {table['source'].nunique()} results files")
    return 0
