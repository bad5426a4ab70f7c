"""Thin entry point: ``python -m pipeline <stage> [options]`` runs ``pipeline.stages.<stage>.main``.

Each stage is one module of :mod:`pipeline.stages` with a ``main(argv) -> int``; it is imported
only when asked for, so that ``python -m pipeline report`` does not pay for importing torch.
"""
from __future__ import annotations

import importlib
import sys

STAGES = {
    "ingest": "published results -> data/published/scores.csv",
    "evaluate": "lm-eval on checkpoints -> data/evals/*.json (accuracy + task loss)",
    "collect": "published + evaluated -> data/scores.parquet",
    "backtest": "fit every law on a split, predict held-out models, score the errors",
    "trends": "label each curve's shape (emergent, inverse, U-shaped, ...) and forecast it",
    "forecast": "predict target models from params.yaml",
    "reach": "how big to reach a goal (TASK:METRIC=VALUE): the compute and N, with an interval and a backtest",
    "report": "reports/index.html, reports/forecast.md and plots",
    "ladders": "every ladder held out at its top: what auto and the intervals learn from (not in dvc repro)",
}
# the commands that are a mode of a stage, listed after it
MODES = {
    "ingest": {"ingest lm-eval": "your lm-eval output folders -> a scores table (suite lm_eval)"},
    "forecast": {"forecast --family": "one family of any scores table at any size (N, D), with its own backtest"},
    "report": {"report --family": "the report of one family's forecast (--out DIR)"},
}


def usage() -> str:
    commands = {}
    for name, doc in STAGES.items():
        commands[name] = doc
        commands.update(MODES.get(name, {}))
    width = max(map(len, commands))
    lines = "\n".join(f"  {name:<{width}}  {doc}" for name, doc in commands.items())
    return f"usage: python -m pipeline <stage> [options]\n\ncommands (each with --help):\n{lines}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        print(usage())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown stage {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(f"pipeline.stages.{argv[0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
