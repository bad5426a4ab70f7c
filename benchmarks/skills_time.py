"""CPU time of the skill law's backtest splits, this tree against a baseline revision, in one run.

For each tree (this working tree, and with ``--baseline REV`` that revision's tracked files,
extracted with ``git archive`` as ``benchmarks/repro_time.py`` does) a fresh Python process
imports the tree's pipeline, then fits and predicts every fold of the splits (default: the two
leave-one-family-out splits of ``params.yaml`` that run the skill law, with every method they
run, or only ``--methods``) one after another in that process, and reports the CPU seconds
(``time.process_time``) spent in the fits, per split: the backtest's "s of fitting" without
its worker processes.  Imports and reading the table are not
counted.  Each tree uses its own ``params.yaml``; both read this tree's ``data/scores.parquet``
(``dvc repro collect`` makes it).  A digest of the predictions says whether both trees
predicted the same numbers (as the backtest writes them).

    .venv/bin/python benchmarks/skills_time.py [--baseline REV] [--repeats N]
        [--splits obsscaling_lofo_small,modelzoo_lofo_small] [--methods all|skills,...]

``--repeats N`` alternates the trees N times and keeps each one's fastest run (shared machines).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = "obsscaling_lofo_small,modelzoo_lofo_small"

# Run inside each tree (cwd = the tree, PYTHONPATH = the tree): prints one JSON line.
CHILD = r"""
import hashlib, json, sys, time
import yaml
from pipeline import backtest, scores
import pipeline.laws  # imported before the clock starts

table_path, splits, methods = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
cfg = yaml.safe_load(open("params.yaml"))["backtest"]
table = scores.read(table_path)
out, digest = {}, hashlib.sha1()
for name in splits:
    split = cfg["splits"][name]
    split = dict(split, methods=[m for m in split["methods"] if m in methods or methods == ["all"]])
    if not split["methods"]:
        sys.exit(f"split {name} runs none of {methods}")
    t = time.process_time()
    for fold in backtest.table_folds(name, split, table):
        preds, errors = backtest.run_fold(table, name, split, cfg, *fold, log=lambda line: None)
        for p in preds:
            digest.update(p.to_csv(index=False, float_format=backtest.FLOAT_FORMAT).encode())
        digest.update(repr([sorted(e.items()) for e in errors]).encode())
    out[name] = time.process_time() - t
print(json.dumps({"cpu": out, "digest": digest.hexdigest()}))
"""


def checkout(rev: str, dst: Path) -> None:
    """Revision ``rev``'s tracked files at ``dst``."""
    dst.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)


def run(tree: Path, table: Path, splits: str, methods: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(table), splits, methods], cwd=tree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{tree}: failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=None, help="git revision to time too (first, in the same run)")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the trees this many times; fastest run each")
    parser.add_argument("--splits", default=SPLITS, help="comma-separated backtest splits (params.yaml)")
    parser.add_argument("--methods", default="all", help="comma-separated methods of those splits to run (all: each one's own)")
    args = parser.parse_args(argv)
    table = ROOT / "data" / "scores.parquet"
    if not table.exists():
        sys.exit(f"{table} is missing: run `dvc repro collect` (or `python -m pipeline collect`) first")
    trees = [("this tree", ROOT)]
    with tempfile.TemporaryDirectory(prefix="capcast-skills-") as tmp:
        if args.baseline:
            checkout(args.baseline, Path(tmp) / "baseline")
            trees.insert(0, (args.baseline, Path(tmp) / "baseline"))
        best: dict = {}
        for _ in range(max(1, args.repeats)):
            for label, tree in trees:
                res = run(tree, table, args.splits, args.methods)
                if label not in best or sum(res["cpu"].values()) < sum(best[label]["cpu"].values()):
                    best[label] = res
    splits = args.splits.split(",")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; methods {args.methods}; "
          f"CPU seconds of fitting, fastest of {max(1, args.repeats)} run(s) each")
    print(f"{'tree':<14}" + "".join(f"{s:>24}" for s in splits) + f"{'total':>10}")
    for label, _ in trees:
        cpu = best[label]["cpu"]
        print(f"{label[:14]:<14}" + "".join(f"{cpu[s]:24.2f}" for s in splits) + f"{sum(cpu.values()):10.2f}")
    if args.baseline:
        new, old = best["this tree"], best[args.baseline]
        ratio = sum(new["cpu"].values()) / sum(old["cpu"].values())
        same = "identical" if new["digest"] == old["digest"] else "DIFFERENT"
        per = ", ".join(f"{s} {new['cpu'][s] / old['cpu'][s]:.2f}x" for s in splits)
        print(f"this tree / {args.baseline}: cpu {ratio:.2f}x ({per}); predictions {same}")
        return 0 if same == "identical" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
