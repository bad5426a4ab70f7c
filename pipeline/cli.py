"""What every command shares: the one top-level error handler (:func:`run_cli`).

A stage's ``main(argv)`` hands its body to :func:`run_cli`: a :class:`pipeline.errors.CapcastError`
(bad input the user can fix) becomes one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import sys


def run_cli(func, argv) -> int:
    """Run a stage's body; turn known input errors into one-line messages, not tracebacks."""
    from pipeline.errors import CapcastError

    try:
        return func(argv) or 0
    except CapcastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
