"""The committed forecast table as the stages use it: read once, checked, turned into policies.

``python -m pipeline ladders`` writes ``data/calibration/ladder_forecasts.csv`` and, beside it, a
manifest naming what made it (a digest of the law code and of the ``ladders:`` settings), so a
stage can say when the table no longer matches the code that reads it.  A backtest learns its
policy without the ladder groups of the families it scores (:func:`exclusions`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from pipeline.errors import CapcastError
from pipeline.laws.policy import FEATURES, Policy

REQUIRED = ["ladder", "group", "kind", "factor", "candidate", "model", "chance", "actual", "stderr", "predicted",
            "status", "spread"] + FEATURES
LAW_CODE = ("laws",)  # packages whose code makes the table's forecasts
_TABLES: dict = {}
_POLICIES: dict = {}


def code_digest(root: Path | None = None) -> str:
    """A digest of the law code (every .py file under pipeline/laws, by path and content)."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    h = hashlib.sha1()
    for package in LAW_CODE:
        for path in sorted((root / package).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


NOT_IN_TABLE = ("processes", "out_dir", "beyond_support")  # settings of how it is made, where, or judged: not what


def settings_digest(cfg: dict) -> str:
    made_of = {k: v for k, v in cfg.items() if k not in NOT_IN_TABLE}
    return hashlib.sha1(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest(cfg: dict, forecasts: pd.DataFrame) -> dict:
    return {"laws": code_digest(), "settings": settings_digest(cfg), "rows": int(len(forecasts)),
            "ladders": int(forecasts["ladder"].nunique())}


def manifest_path(path: str | Path) -> Path:
    """``x/ladder_forecasts.csv.gz`` -> ``x/ladder_forecasts.json``."""
    path = Path(path)
    return path.parent / (path.name.split(".")[0] + ".json")


def stale(path: str | Path, cfg: dict) -> str | None:
    """Why the table at ``path`` no longer matches this code and these settings, or None."""
    try:
        made = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError):
        return f"{manifest_path(path)} is missing or unreadable"
    if made.get("settings") != settings_digest(cfg):
        return "the ladders: settings in params.yaml changed since it was made"
    if made.get("laws") != code_digest():
        return "the law code (pipeline/laws) changed since it was made"
    return None


def read(path: str | Path) -> pd.DataFrame:
    """The forecast table at ``path`` (cached per file and modification time); one-line errors."""
    path = Path(path)
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        raise CapcastError(f"{path}: not found; write it with `python -m pipeline ladders` (the ladder "
                           "collection's forecasts, which auto and the intervals are learned from)") from None
    if key not in _TABLES:
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CapcastError(f"{path}: unreadable ({' '.join(str(exc).split())[:120]}); write it again with "
                               "`python -m pipeline ladders`") from None
        missing = [c for c in REQUIRED if c not in table.columns]
        if missing:
            raise CapcastError(f"{path}: not a ladder forecast table (missing {', '.join(missing[:5])}); write it "
                               "again with `python -m pipeline ladders`")
        _TABLES.clear()
        _TABLES[key] = table
    return _TABLES[key]


def policy(path: str | Path, candidates: list[str], level: float, exclude=()) -> Policy:
    """The policy learned from the table at ``path`` without the groups ``exclude`` (cached)."""
    table = read(path)
    known = set(table["candidate"])
    unknown = [c for c in candidates if c not in known]
    if unknown:
        raise CapcastError(f"{path}: has no forecasts of {', '.join(unknown)}; add them to ladders.candidates and "
                           "run `python -m pipeline ladders`")
    key = _key(path, candidates, level, exclude)
    if key not in _POLICIES:
        if len(_POLICIES) > 32:
            _POLICIES.clear()
        _POLICIES[key] = Policy.learn(table, list(candidates), level, exclude=sorted(set(exclude)))
    return _POLICIES[key]


def _key(path, candidates, level, exclude) -> tuple:
    return (str(Path(path).resolve()), tuple(candidates), float(level), tuple(sorted(set(exclude))))


def exclusions(families, lineages: dict | None = None) -> list[str]:
    """The ladder groups to leave out when scoring forecasts of ``families``: their lineages."""
    from pipeline.ladders.collection import lineage

    return sorted({lineage(str(f), lineages) for f in families})


DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "calibration" / "ladder_forecasts.csv.gz"
DEFAULT_CANDIDATES = ("line_final", "line_frontier", "loglinear", "sigmoid_final", "sigmoid", "direct", "two_step",
                      "carry")


class Source:
    """Where the stages' policies come from: the forecast table, its candidates and the lineages
    that group families (params.yaml ``ladders:``; the defaults without one)."""

    def __init__(self, path=DEFAULT_PATH, candidates=DEFAULT_CANDIDATES, lineages: dict | None = None):
        self.path, self.candidates, self.lineages = Path(path), tuple(candidates), dict(lineages or {})

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Source":
        cfg = cfg or {}
        return cls(cfg.get("forecasts", DEFAULT_PATH), cfg.get("candidates", DEFAULT_CANDIDATES), cfg.get("lineage"))

    def policy(self, level: float, families=()) -> Policy:
        """The policy learned without the ladder groups of ``families`` (the families a backtest scores)."""
        return policy(self.path, list(self.candidates), level, exclusions(families, self.lineages))

    def remember(self, level: float, families, learned: Policy) -> None:
        """Put a policy learned elsewhere (a worker process) into this process's cache."""
        read(self.path)  # the table too, so that forked workers share it
        _POLICIES[_key(self.path, self.candidates, level, exclusions(families, self.lineages))] = learned
