"""Independent jobs in forked worker processes: the stages' only parallelism.

Fork (where the platform has it) shares the parent's imported modules and data without
pickling them; results come back in the order of the inputs, so the output does not depend on
the number of processes.
"""
from __future__ import annotations

import multiprocessing as mp

_JOB = None


def _call(item):
    return _JOB(item)


def fork_map(func, items: list, processes: int) -> list:
    """``[func(x) for x in items]``, in ``processes`` forked workers when that helps."""
    global _JOB
    items = list(items)
    if processes <= 1 or len(items) <= 1 or "fork" not in mp.get_all_start_methods():
        return [func(x) for x in items]
    _JOB = func
    try:
        with mp.get_context("fork").Pool(min(processes, len(items))) as pool:
            return pool.map(_call, items, chunksize=1)
    finally:
        _JOB = None
