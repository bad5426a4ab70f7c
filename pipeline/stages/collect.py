"""collect stage: published rows + capcast's own evaluations + lm-eval output folders -> data/scores.parquet.

One validated table: the published rows, the evaluate stage's records (suite ``capcast_eval``) and
every folder listed in ``collect.lm_eval_dirs`` (suite ``lm_eval``, see :mod:`pipeline.sources.lm_eval`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pipeline import files, params, scores
from pipeline.cli import Parser
from pipeline.errors import CapcastError

WATCHED = Path("data/lm_eval")  # the folder dvc.yaml's collect stage depends on


def lm_eval_rows(entries: list) -> list[pd.DataFrame]:
    """The rows of each ``collect.lm_eval_dirs`` entry (a folder, or {path, family, tokens, ...})."""
    if not entries:
        return []
    from pipeline.sources import lm_eval as lm

    entries = [{"path": e} if isinstance(e, str) else e for e in entries]
    where = [f"params.yaml collect.lm_eval_dirs[{i}]" for i in range(len(entries))]
    for w, e in zip(where, entries):
        if not Path(e["path"]).exists():
            raise CapcastError(f"{w}: {e['path']}: no such folder; put lm-eval's output under data/lm_eval/ "
                               "and name it here")
        if not Path(e["path"]).resolve().is_relative_to(WATCHED.resolve()):
            print(f"collect: warning: {w} ({e['path']}) is outside {WATCHED}/, which dvc.yaml watches: dvc repro "
                  "will not see new runs there; move it under it", file=sys.stderr)
    out = []
    for w, e in zip(where, entries):
        try:
            out.append(lm.import_runs([e["path"]], lm.Facts.from_entry(e)))
        except CapcastError as exc:
            raise CapcastError(f"{w}: {exc}") from None
    return out


def collect(published: str | Path, evals_dir: str | Path | None, lm_eval_dirs: list | None = None) -> pd.DataFrame:
    parts = [scores.read(published)]
    if evals_dir is not None and any(Path(evals_dir).glob("*.json")):
        from pipeline.sources.evaluation import load_eval_rows  # only when there is something to fold in

        parts.append(load_eval_rows(evals_dir))
    parts += lm_eval_rows(lm_eval_dirs or [])
    return scores.validate(pd.concat(parts, ignore_index=True), origin=f"collect ({published} + {evals_dir})")


def parser(cfg: dict | None = None) -> argparse.ArgumentParser:
    """The command's options, their defaults from params.yaml ``collect:`` (``cfg``)."""
    cfg = cfg or {}
    p = Parser(prog="python -m pipeline collect", description=__doc__.split("\n")[0])
    p.add_argument("--published", default=cfg.get("published", "data/published/scores.csv"),
                   help="the published rows (default: collect.published, data/published/scores.csv)")
    p.add_argument("--evals-dir", default=cfg.get("evals_dir", "data/evals"),
                   help="the evaluate stage's records (default: collect.evals_dir, data/evals)")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", default=cfg.get("out", "data/scores.parquet"),
                   help="the scores table to write (default: data/scores.parquet)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"collect": parser()}


def _main(argv) -> int:
    cfg = params.load("collect")
    args = parser(cfg).parse_args(argv)
    files.check_outputs([("--out", args.out)], [("--published", args.published)])
    scores.clean_stale_temps(Path(args.out).parent, names=[Path(args.out).name])
    table = collect(args.published, args.evals_dir, cfg.get("lm_eval_dirs"))
    scores.write(table, args.out, origin="collect")
    counts = table.groupby("suite").size()
    print(f"wrote {len(table)} rows to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv=None) -> int:
    from pipeline.cli import run_cli

    return run_cli(_main, argv)
