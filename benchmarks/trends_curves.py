"""How long the trends analysis takes on many curves: this tree against a baseline revision.

Writes one synthetic scores table of ``--curves`` curves (8 model sizes each, binomial stderr;
rising, emergent, flat, declining, U-shaped and loss curves in equal parts), then times
``trends.analysis.analyse_table`` (labels, evidence, forecasts with intervals, emergence crossings) on it
in a fresh process of this tree and of ``--baseline`` (a git revision, checked out with
``git archive`` into a temporary directory, with its own params.yaml), alternating, and prints
the wall and CPU seconds of each and their ratio.  Single-threaded numerics (the package pins
OpenBLAS to one thread), so the figure is per core.

    .venv/bin/python benchmarks/trends_curves.py [--curves 1000] [--baseline 9b09485] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "9b09485"  # main before the trends rework (the code the issue measured)
N = np.array([70e6, 160e6, 410e6, 1.0e9, 1.4e9, 2.8e9, 6.9e9, 12e9])

RUN = """
import json, resource, sys, time
import pandas as pd
try:
    from pipeline.stages.trends import load_config
    from pipeline.trends.analysis import analyse_table
    from pipeline.trends.curves import LABELS
except ImportError:  # a revision from before the trends package
    from pipeline.trends import LABELS, analyse_table, load_config
table = pd.read_parquet(sys.argv[1])
cfg = load_config("params.yaml")
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
curves, em = analyse_table(table, cfg)
r1 = resource.getrusage(resource.RUSAGE_SELF)
labels = curves["label"].where(curves["label"].isin(LABELS), "insufficient").value_counts().to_dict()
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime,
                  "curves": len(curves), "labels": labels}))
"""


def synthetic(n_curves: int, seed: int = 0) -> pd.DataFrame:
    """``n_curves`` curves over 8 sizes; family f, task k; accuracies with binomial noise (1,000 items)."""
    rng = np.random.default_rng(seed)
    u = np.log10(N / N[0])
    shapes = {
        "rising": lambda: 0.3 + 0.1 * u + rng.uniform(-0.05, 0.05),
        "emergent": lambda: 0.25 + 0.5 / (1 + np.exp(-(u - rng.uniform(1.2, 2.2)) / 0.15)),
        "flat": lambda: np.full(8, 0.25),
        "declining": lambda: 0.75 - 0.08 * u,
        "u_shaped": lambda: 0.35 + 0.15 * (u - 1.2) ** 2,
    }
    names = list(shapes) + ["loss"]
    rows = []
    for i in range(n_curves):
        kind = names[i % len(names)]
        fam, task = f"fam{i // 50}", f"task{i % 50}"
        if kind == "loss":
            y = 3.0 * (N / N[0]) ** -0.12 + 1.5
            se = 0.01 * y
            metric = "nll"
        else:
            y = np.clip(shapes[kind](), 0.01, 0.99)
            se = np.sqrt(y * (1 - y) / 1000)
            metric = "acc"
        v = y + se * rng.standard_normal(8)
        for j, n in enumerate(N):
            rows.append(dict(suite="bench", model=f"{fam}-{j}", family=fam, params=n, tokens=3e11,
                             compute_flops=6 * n * 3e11, step=143000, task=task, metric=metric, value=float(v[j]),
                             stderr=float(se[j]), num_fewshot=0, chance=0.25 if metric == "acc" else np.nan,
                             source="synthetic"))
    return pd.DataFrame(rows)


def checkout(rev: str, dest: Path) -> Path:
    """``rev``'s pipeline package and params.yaml under ``dest`` (git archive: no working-tree files)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pipeline", "params.yaml"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def timed(tree: Path, table: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(table)], cwd=tree, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        sys.exit(f"run in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--curves", type=int, default=1000)
    p.add_argument("--baseline", default=BASELINE, help="git revision to compare against")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="capcast-trends-bench-") as tmp:
        tmp = Path(tmp)
        table = tmp / "curves.parquet"
        synthetic(args.curves).to_parquet(table)
        old = checkout(args.baseline, tmp / "baseline")
        runs = {"this tree": [], f"baseline {args.baseline}": []}
        for _ in range(args.repeats):  # alternate, so load changes hit both
            runs["this tree"].append(timed(ROOT, table))
            runs[f"baseline {args.baseline}"].append(timed(old, table))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.curves} curves x 8 sizes")
    print(f"{'code':<22} {'wall s':>8} {'cpu s':>8} {'s/curve':>8}  labels")
    best = {}
    for name, rs in runs.items():
        r = min(rs, key=lambda r: r["wall"])
        best[name] = r
        print(f"{name:<22} {r['wall']:8.1f} {r['cpu']:8.1f} {r['wall'] / args.curves:8.4f}  {r['labels']}")
    new, base = best["this tree"], best[f"baseline {args.baseline}"]
    print(f"ratio baseline / this tree: wall {base['wall'] / new['wall']:.1f}x, cpu {base['cpu'] / new['cpu']:.1f}x; "
          f"this tree {'<=' if new['wall'] <= 30 else '>'} 30 s per 1,000 curves: "
          f"{new['wall'] * 1000 / args.curves:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
