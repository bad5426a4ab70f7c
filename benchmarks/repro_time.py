"""How long the default `dvc repro` takes, and the backtest stage alone, against a baseline.

Copies the working tree (without the virtual environment, DVC cache and generated outputs) to a
temporary directory, runs a fresh ``dvc repro -f`` there, then the backtest stage alone, and a
baseline in the same conditions: a Python process that only reads the scores table with pandas
(interpreter start-up + imports + I/O, the floor under any stage).  Prints wall and CPU seconds,
the ratios to the baseline, and checks the budget (issue #4: the whole default ``dvc repro``
in <= 60 s on a 2-core machine).  Exit status 1 if over budget.

    .venv/bin/python benchmarks/repro_time.py [--budget 60] [--keep] [--baseline REV]

``--baseline REV`` also runs ``dvc repro -f`` on revision REV's tracked files (``git archive``,
in a fresh git repository of their own) in the same conditions, before this tree, and prints
the ratio: a change's effect on the pipeline's time, measured in one run on one machine;
``--repeats N`` alternates the two N times and compares each one's fastest run.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ["data/scores.parquet", "reports", "dvc.lock"]


def copy_tree(dst: Path) -> None:
    def ignore(directory, names):
        inside_dvc = Path(directory).name == ".dvc"
        return [n for n in names if n in {".venv", "__pycache__", ".pytest_cache", "evals"}
                or (inside_dvc and n in {"cache", "tmp"})]

    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)
    for rel in GENERATED:  # a fresh run regenerates them
        p = dst / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def checkout(rev: str, dst: Path) -> None:
    """Revision ``rev``'s tracked files at ``dst``, as a git repository of their own (DVC wants one)."""
    dst.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
    for rel in GENERATED:
        p = dst / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=bench", "-c", "user.email=bench@localhost",
                                               "commit", "-qm", f"baseline {rev}"]):
        subprocess.run(["git", "-C", str(dst), *cmd], check=True, capture_output=True)


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the children, combined output) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout + proc.stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds allowed for the whole dvc repro")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--baseline", default=None, help="git revision to time dvc repro -f on too (before this tree)")
    parser.add_argument("--repeats", type=int, default=1, help="with --baseline: alternate the two this many times "
                                                                "and keep each one's fastest run (shared machines)")
    args = parser.parse_args(argv)

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="capcast-repro-"))
    work = tmp / "repo"
    try:
        copy_tree(work)
        baseline = timed([sys.executable, "-c", "import pandas as pd; pd.read_csv('data/published/scores.csv')"],
                         work, env)
        before, runs = None, []
        if args.baseline:
            checkout(args.baseline, tmp / "baseline")
        for _ in range(max(1, args.repeats) if args.baseline else 1):  # alternate: load changes hit both
            if args.baseline:
                b = timed([str(bin_dir / "dvc"), "repro", "-f"], tmp / "baseline", env)
                before = b if before is None else (min(before[0], b[0]), min(before[1], b[1]), b[2])
            runs.append(timed([str(bin_dir / "dvc"), "repro", "-f"], work, env))
        repro = (min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2])
        stage = timed([sys.executable, "-m", "pipeline", "backtest"], work, env)
        base_wall = baseline[0]
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machines: "
              f"compare ratios, not seconds)")
        print(f"{'run':<34} {'wall s':>8} {'cpu s':>8} {'x baseline':>11}")
        for name, (wall, cpu, _) in (("baseline: pandas reads the table", baseline),
                                     ("dvc repro -f (whole pipeline)", repro),
                                     ("backtest stage alone", stage)):
            print(f"{name:<34} {wall:8.1f} {cpu:8.1f} {wall / base_wall:11.1f}")
        if before is not None:
            name = f"dvc repro -f at {args.baseline}"[:34]
            print(f"{name:<34} {before[0]:8.1f} {before[1]:8.1f} {before[0] / base_wall:11.1f}")
            print(f"this tree / {args.baseline}: wall {repro[0] / before[0]:.2f}x, cpu {repro[1] / before[1]:.2f}x "
                  f"({'faster' if repro[0] < before[0] and repro[1] < before[1] else 'not faster'}; fastest of "
                  f"{len(runs)} alternating run{'s' * (len(runs) > 1)} each)")
        ok = repro[0] <= args.budget
        print(f"budget: dvc repro {repro[0]:.1f} s {'<=' if ok else '>'} {args.budget:.0f} s -> "
              f"{'OK' if ok else 'OVER BUDGET'}; backtest is {stage[0] / repro[0]:.0%} of it")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
