"""Score curves of the trends stage: which rows make a curve, its orientation and chance level,
and its points as a :class:`pipeline.trends.shapes.Curve` (or the reason it cannot be labelled).

A *curve* is one (suite, family, task, metric, num_fewshot) over the family's models at their
final checkpoint (the largest step, or the stepless row), or one model over its checkpoints.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.trends import shapes

CURVE_KEY = ["suite", "family", "task", "metric", "num_fewshot"]
LABELS = ("positive", "emergent", "inverse", "u_shaped", "inverted_u", "flat", "noisy")


class TrendsError(CapcastError):
    """Bad input to the trends stage; the message says what to change."""


def x_column(x: str) -> str:
    return "compute_flops" if x == "compute" else "params"


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, model, task, metric, shots): the largest step (a stepless row only
    where the model has no numbered checkpoint)."""
    keys = ["suite", "model", "task", "metric", "num_fewshot"]
    s = table["step"].astype("float64").fillna(-1.0).to_numpy()
    order = table.iloc[np.argsort(s, kind="mergesort")]
    return order.groupby(keys, dropna=False, sort=False).tail(1).sort_index()


def plain(table: pd.DataFrame) -> pd.DataFrame:
    """The scores table with plain numpy dtypes (object strings, float steps/shots): grouping and
    slicing thousands of small curves is several times faster than on Arrow-backed columns."""
    out = table.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.StringDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    for c in ("step", "num_fewshot"):
        out[c] = out[c].astype("float64")
    return out


def group_curves(rows: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    out = []
    for key, g in rows.groupby(keys, dropna=False, sort=True):
        out.append((dict(zip(keys, key)), g))
    return out


@dataclass
class Prepared:
    curve: shapes.Curve | None
    reason: str | None  # insufficient: ...
    note: str  # e.g. chance unknown
    x: np.ndarray
    y: np.ndarray
    chance: float | None = None  # random-guess level (accuracies whose level is known)
    bounded: bool = False  # values in [0, 1]


CHANCE_UNKNOWN = "chance unknown: emergence not testable (fill the chance column or pass --chance TASK=LEVEL)"


def metric_orientation(task: str, metric: str, rows: pd.DataFrame) -> tuple[float, bool, float | None, str]:
    """(orient, bounded, chance, note) for a (task, metric) from its rows (``value``, optional ``chance``).

    The chance level is the rows' ``chance`` column, else the built-in table
    (:func:`pipeline.scores.chance_level`); free-form answers (exact match, ...) are at 0."""
    kind = scores.metric_kind(metric)
    note = ""
    if kind == "loss":
        return -1.0, False, None, note
    if kind == "accuracy":
        values = rows["value"].to_numpy(dtype=float)
        bounded = bool(np.all((values >= 0) & (values <= 1)))
        given = "chance" in rows.columns and rows["chance"].notna().any()
        ch = _given_chance(task, metric.split(",")[0], rows) if given else _table_chance(task, metric.split(",")[0])
        note = CHANCE_UNKNOWN if ch is None else ""
        return 1.0, bounded, (ch if bounded else None), note
    return 1.0, False, None, "metric kind unknown: higher taken as better"


def _given_chance(task: str, metric: str, rows: pd.DataFrame) -> float | None:
    try:
        return scores.chance_level(task, metric, rows)
    except scores.ScoresError as exc:
        if "no chance level known" not in str(exc):
            raise TrendsError(str(exc)) from None  # e.g. two levels for one task
        return None


@functools.lru_cache(maxsize=4096)
def _table_chance(task: str, metric: str) -> float | None:
    """The built-in level (thousands of curves share a few hundred tasks)."""
    return _given_chance(task, metric, None)


def prepare(task: str, metric: str, pts: pd.DataFrame, xcol: str, cfg: dict) -> Prepared:
    """Points of one curve → a :class:`shapes.Curve`, or the reason it cannot be labelled."""
    x = pts[xcol].to_numpy(dtype=float)
    order = np.lexsort((pts["model"].to_numpy(dtype=object).astype(str), x))
    x = x[order]
    y = pts["value"].to_numpy(dtype=float)[order]
    se = pts["stderr"].to_numpy(dtype=float)[order]
    orient, bounded, ch, note = metric_orientation(task, metric, pts)
    reasons = []
    n_scales = len(np.unique(x))
    if n_scales < cfg["min_scales"]:
        reasons.append(f"<{cfg['min_scales']} scales ({n_scales})")
    missing = int(np.isnan(se).sum())
    if missing == len(se):
        reasons.append("no stderr")
    elif missing:
        reasons.append(f"no stderr for {missing} of {len(se)} points")
    if reasons:
        return Prepared(None, "insufficient: " + "; ".join(reasons), note, x, y, ch, bounded)
    s_eff, n_items = shapes.effective_stderr(y, se, bounded, cfg["min_stderr"])
    if orient < 0 and np.all(y > 0):
        # a loss: fitted as ln(value) (a power law is linear there; ln ppl is the token loss)
        curve = shapes.Curve(np.log10(x), np.log(y), s_eff / y, ch, orient, False, None, log=True,
                             perplexity=metric.split(",")[0] in scores.PERPLEXITY_METRICS)
        note = "; ".join(filter(None, [note, "fitted on ln(value)"]))
    else:
        curve = shapes.Curve(np.log10(x), y, s_eff, ch, orient, bounded, n_items)
    return Prepared(curve, None, note, x, y, ch, bounded)


def family_map(pts: pd.DataFrame) -> tuple[float, float] | None:
    """log10 params = a + b·log10 compute over a family's models (its tokens-per-parameter recipe)."""
    lc = np.log10(pts["compute_flops"].to_numpy(dtype=float))
    ln = np.log10(pts["params"].to_numpy(dtype=float))
    if len(np.unique(lc)) < 2:
        return None
    b, a = np.polyfit(lc, ln, 1)
    return float(a), float(b)


def to_compute_params(t: np.ndarray, x: str, fmap) -> tuple[np.ndarray, np.ndarray]:
    """Scale(s) t = log10(x) → (compute, params), through the family map where needed."""
    t = np.asarray(t, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        if x == "compute":
            comp = 10.0 ** t
            par = 10.0 ** (fmap[0] + fmap[1] * t) if fmap else np.full_like(t, np.nan)
        else:
            par = 10.0 ** t
            comp = 10.0 ** ((t - fmap[0]) / fmap[1]) if fmap and fmap[1] else np.full_like(t, np.nan)
    return comp, par
