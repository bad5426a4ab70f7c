"""Finding an lm-eval output folder's files: its results JSONs, and each run's samples files
beside them (``samples_<task>_<date>.jsonl``, the same date as the run's ``results_<date>.json``).
"""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import CapcastError

DATE = re.compile(r"_(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl?$")


class LmEvalError(CapcastError):
    """Bad or partial lm-eval output; the message names the file and the fix."""


def results_files(paths) -> list[Path]:
    """Every results JSON under ``paths`` (a folder lm-eval wrote, or one of its results files)."""
    found = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            here = sorted(p.rglob("results_*.json"))
            if not here:
                raise LmEvalError(f"{p}: no results_*.json under it; is this the folder lm_eval's "
                                   "--output_path wrote?")
            found += here
        else:
            raise LmEvalError(f"{p}: no such file or folder")
    return sorted(set(found), key=str)


def date_id(path: Path) -> str | None:
    m = DATE.search(path.name)
    return m.group(1) if m else None


def samples_files(results: Path) -> dict[str, Path]:
    """{task: samples file} of the run that wrote ``results`` (same folder, same date)."""
    stamp = date_id(results)
    if stamp is None:
        return {}
    suffix = f"_{stamp}.jsonl"
    return {p.name[len("samples_"):-len(suffix)]: p for p in sorted(results.parent.glob(f"samples_*{suffix}"))}


def missing_samples(paths) -> str:
    """One warning line naming the folders whose results files have no samples beside them (lm_eval
    ran without ``--log_samples``), or '' where every one has them."""
    found = []
    for p in map(Path, paths):
        files = results_files([p])
        bare = [f for f in files if not samples_files(f)]
        if bare:
            found.append(f"{p} ({len(bare)} of {len(files)} results files)")
    if not found:
        return ""
    return (f"warning: no samples in {', '.join(found)}: lm_eval ran without --log_samples, so the task losses "
            "(nll, bpb, ...) are not imported and two_step, which goes through them, cannot run; re-run lm_eval "
            "with --log_samples")


def orphan_samples(results: list[Path]) -> list[Path]:
    """Samples files whose run left no results JSON beside them (a run killed while writing)."""
    stamps = {(r.parent, date_id(r)) for r in results}
    # a results file of the folder that was not named (one file imported on its own) still owns its samples
    stamps |= {(r.parent, date_id(r)) for folder in {r.parent for r in results} for r in folder.glob("results_*.json")}
    out = []
    for folder in sorted({r.parent for r in results}):
        out += [p for p in sorted(folder.glob("samples_*.jsonl")) if (folder, date_id(p)) not in stamps]
    return out
