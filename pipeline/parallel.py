"""Independent jobs in forked worker processes: the stages' only parallelism.

Fork (where the platform has it) shares the parent's imported modules and data without
pickling them; results come back in the order of the inputs, so the output does not depend on
the number of processes.

Long work takes a ``progress`` argument: a function of the number of steps returning a bar with
``update()`` and ``close()`` (the front doors pass :func:`pipeline.cli.progress`'s, a tqdm bar on
a terminal); :func:`bar` gives one that shows nothing where there is none.
"""
from __future__ import annotations

import multiprocessing as mp
from contextlib import contextmanager

_JOB = None
_PROGRESS = None  # the bar of every fork_map not given its own (see shown())


class Quiet:
    """A progress bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def bar(progress, total: int | None):
    """``progress(total)``, or a :class:`Quiet` bar where ``progress`` is None."""
    return progress(total) if progress is not None else Quiet()


def each(items, done):
    """``items`` one by one, advancing the bar ``done`` as each is finished with."""
    for x in items:
        yield x
        done.update()


@contextmanager
def shown(progress):
    """Within it, every :func:`fork_map` not given its own ``progress`` shows this one (for work
    whose fork_map is called deep inside code that does not pass one along)."""
    global _PROGRESS
    before, _PROGRESS = _PROGRESS, progress
    try:
        yield
    finally:
        _PROGRESS = before


def _call(item):
    return _JOB(item)


def fork_map(func, items: list, processes: int, progress=None) -> list:
    """``[func(x) for x in items]``, in ``processes`` forked workers when that helps; ``progress``
    (see the module docstring) advances as each result comes back, in order."""
    global _JOB, _PROGRESS
    items = list(items)
    outer, _PROGRESS = _PROGRESS, None  # a fork_map inside a job shows no bar of its own
    done = bar(progress or outer, len(items))
    try:
        if processes <= 1 or len(items) <= 1 or "fork" not in mp.get_all_start_methods():
            out = []
            for x in items:
                out.append(func(x))
                done.update()
            return out
        _JOB = func
        try:
            with mp.get_context("fork").Pool(min(processes, len(items))) as pool:
                out = []
                for result in pool.imap(_call, items, chunksize=1):
                    out.append(result)
                    done.update()
                return out
        finally:
            _JOB = None
    finally:
        done.close()
        _PROGRESS = outer
