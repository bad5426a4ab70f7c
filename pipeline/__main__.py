"""Thin entry point: ``python -m pipeline <stage> [options]``.

Each stage is one module with a ``main(argv) -> int``; modules are imported lazily so that
``python -m pipeline report`` does not pay for importing torch.
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
    "report": "reports/index.html, reports/forecast.md and plots",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STAGES:
        width = max(map(len, STAGES))
        lines = "\n".join(f"  {name:<{width}}  {doc}" for name, doc in STAGES.items())
        print(f"usage: python -m pipeline <stage> [options]\n\nstages:\n{lines}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown stage {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(f"pipeline.stages.{argv[0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
