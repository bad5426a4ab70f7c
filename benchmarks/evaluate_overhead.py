"""Overhead of the evaluate stage over a plain lm-eval call, on a tiny local model, offline.

Each side loads the same model and runs the same two local tasks (multiple choice and
last word, tests/data/tasks) with log_samples and the same batch size: a plain
``simple_evaluate`` call (what ``lm_eval --log_samples`` runs), lm-eval's bare core (model
load + ``evaluator.evaluate``, without simple_evaluate's ~0.3-0.7 s environment report), and
the stage, which also computes task losses, evaluates task by task and writes its JSON and
gzipped samples.  Runs alternate, after a warm-up; medians are compared.  Then the stage is
re-run with nothing to do, in process and from the shell.

    python benchmarks/evaluate_overhead.py [--repeats 5] [--scale 10] [--batch-size 16]

``--scale`` repeats the task documents (15 each) to give the model more work per call.
Target: ratio <= 1.05.  Numbers depend on the machine; they are printed, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.sources import evaluation as ev  # noqa: E402
from pipeline.sources import lm_eval_run as lmrun  # noqa: E402
from tests.tiny_models import OPT, TASKS_DIR, build_zoo  # noqa: E402

TASKS = ["capcast_tiny_mc", "capcast_tiny_lastword"]


def scaled_tasks(dest: Path, scale: int) -> Path:
    """The local task YAMLs over JSONL files with every document repeated ``scale`` times."""
    dest.mkdir(parents=True, exist_ok=True)
    for jsonl in TASKS_DIR.glob("*.jsonl"):
        (dest / jsonl.name).write_text(jsonl.read_text() * scale)
    for yaml in TASKS_DIR.glob("*.yaml"):
        (dest / yaml.name).write_text(yaml.read_text().replace("DATA_DIR", str(dest)))
    return dest


def plain_lm_eval(model: str, include_path: Path, batch_size: int) -> int:
    """What a user would otherwise run: ``lm_eval --model hf --tasks ... --log_samples`` as one call."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    res = simple_evaluate(model="hf", model_args={"pretrained": model}, tasks=TASKS, batch_size=batch_size,
                          device="cpu", bootstrap_iters=0, log_samples=True,
                          task_manager=TaskManager(include_defaults=False, include_path=str(include_path)))
    return sum(len(s["arguments"]) for task in res["samples"].values() for s in task)


def lm_eval_core(model: str, include_path: Path, batch_size: int) -> int:
    """Only the work itself: load the model, run both tasks in one ``evaluator.evaluate`` (no
    environment report, git hash or hub look-up as simple_evaluate adds): the stage's own overhead
    shows against this."""
    from lm_eval import evaluator
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    lm = get_model("hf").create_from_arg_obj({"pretrained": model}, {"batch_size": batch_size, "device": "cpu"})
    tasks = TaskManager(include_defaults=False, include_path=str(include_path)).load(TASKS)
    for task in tasks["tasks"].values():
        task.set_config(key="num_fewshot", value=0)
    res = evaluator.evaluate(lm=lm, task_dict=tasks, bootstrap_iters=0, log_samples=True)
    return sum(len(s["arguments"]) for task in res["samples"].values() for s in task)


def stage(model: str, include_path: Path, batch_size: int, out_dir: Path) -> None:
    entries = [{"model": model, "name": "tiny-opt-m", "family": "tiny-opt", "tokens": 1}]
    settings = ev.Settings(tasks=tuple(TASKS), batch_size=batch_size, device="cpu",
                           include_path=str(include_path), out_dir=out_dir)
    lmrun.evaluate(ev.checkpoints_from_entries(entries), settings)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zoo = build_zoo(tmp / "zoo", specs=OPT)
        model = str(zoo.local["tiny-opt-m"])
        include = scaled_tasks(tmp / "tasks", args.scale)
        timed(plain_lm_eval, model, include, args.batch_size)  # warm-up: imports, first load, datasets cache
        timed(stage, model, include, args.batch_size, tmp / "warm")
        plain_s, core_s, stage_s = [], [], []
        for i in range(args.repeats):
            t, requests = timed(plain_lm_eval, model, include, args.batch_size)
            plain_s.append(t)
            core_s.append(timed(lm_eval_core, model, include, args.batch_size)[0])
            out_dir = tmp / f"evals{i}"
            stage_s.append(timed(stage, model, include, args.batch_size, out_dir)[0])
        noop_s = timed(stage, model, include, args.batch_size, out_dir)[0]
        cli = [sys.executable, "-m", "pipeline", "evaluate", "--model", model, "--name", "tiny-opt-m",
               "--family", "tiny-opt", "--tokens", "1", "--tasks", ",".join(TASKS), "--include-path", str(include),
               "--device", "cpu", "--out", str(out_dir)]
        noop_cli_s, done = timed(lambda: subprocess.run(cli, cwd=ROOT, capture_output=True, text=True))
        if done.returncode != 0 or "already up to date" not in done.stderr:
            raise SystemExit(f"no-op re-run did not skip:\n{done.stderr}")

    plain, core, mine = (statistics.median(x) for x in (plain_s, core_s, stage_s))
    report = {
        "requests_per_run": requests, "repeats": args.repeats, "scale": args.scale, "batch_size": args.batch_size,
        "plain_lm_eval_s": round(plain, 3), "lm_eval_core_s": round(core, 3), "stage_s": round(mine, 3),
        "ratio": round(mine / plain, 3), "ratio_to_core": round(mine / core, 3),
        "plain_requests_per_s": round(requests / plain, 1), "stage_requests_per_s": round(requests / mine, 1),
        "noop_rerun_in_process_s": round(noop_s, 3), "noop_rerun_cli_s": round(noop_cli_s, 3),
    }
    print(json.dumps(report, indent=1))
    print(f"evaluate stage / plain lm-eval: {report['ratio']:.3f} (target <= 1.05), "
          f"/ lm-eval's bare evaluate: {report['ratio_to_core']:.3f}; "
          f"{report['stage_requests_per_s']:.0f} requests/s; no-op re-run {noop_cli_s:.2f} s from the shell")
    return 0


if __name__ == "__main__":
    sys.exit(main())
