"""From scores-table rows to the points a law fits: one value per checkpoint, with its scale.

A *unit* is one checkpoint: (model, step); ``step`` is empty for a final/unknown checkpoint.
Laws see units with their family, N (``params``), D (``tokens``), C (``compute_flops``), the
metric ``value`` and its ``stderr``.  Every problem a user can fix raises :class:`FitError`
with a one-line message naming what to change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import FitError

UNIT = ["model", "step"]
SCALE = ["family", "params", "tokens", "compute_flops"]
OPTIONAL = ["params_non_embedding", "chance"]  # per-unit facts carried when the rows have them


@dataclass(frozen=True)
class Metric:
    """A ``task:metric`` pair such as ``arc_easy:acc`` or ``lambada_openai:ppl``."""

    task: str
    metric: str

    @classmethod
    def parse(cls, text, what: str = "--target") -> "Metric":
        if isinstance(text, Metric):
            return text
        task, sep, metric = str(text).strip().rpartition(":")
        if not sep or not task or not metric:
            raise FitError(f"{what} {text!r} is not TASK:METRIC (e.g. arc_easy:acc)")
        return cls(task.strip(), metric.strip())

    def __str__(self) -> str:
        return f"{self.task}:{self.metric}"

    @property
    def kind(self) -> str:
        return scores.metric_kind(self.metric)

    def chance(self, rows: pd.DataFrame | None = None) -> float:
        """Random-guess level of an accuracy metric (the sigmoid floor): the ``chance`` column of
        ``rows`` where filled, else the built-in table; 0 for other kinds."""
        if self.kind != "accuracy":
            return 0.0
        try:
            return _CHANCE.get((rows,), str(self), lambda: scores.chance_level(self.task, self.metric, rows))
        except scores.ScoresError as exc:
            raise FitError(str(exc)) from None


def present(rows: pd.DataFrame, limit: int = 8) -> str:
    """The task:metric pairs in ``rows``, for messages."""
    pairs = sorted({f"{t}:{m}" for t, m in zip(rows["task"], rows["metric"])})
    more = f", ... ({len(pairs)} in all)" if len(pairs) > limit else ""
    return ", ".join(pairs[:limit]) + more if pairs else "nothing"


class IdentityCache:
    """Results of a pure function of frames, keyed by the frames' identity (and some settings).

    Every law of a backtest fold, its nested fits and each of its steps derive the same unit
    frames from the same rows; deriving them once saves most of the pandas work.  The cache
    holds the frames it was keyed on (so an id is never reused while cached); callers must not
    modify the frames they get back.
    """

    def __init__(self, size: int = 256):
        self.size, self.items = size, {}

    def get(self, frames: tuple, settings, compute):
        key = tuple(id(f) for f in frames) + (settings,)
        hit = self.items.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], frames)):
            return hit[1]
        out = compute()
        if len(self.items) >= self.size:
            self.items.clear()
        self.items[key] = (frames, out)
        return out


class KeyCache:
    """Results of costly fits keyed by a digest string (of the rows, options and weights they
    came from), shared by every target and law asking for the same one; emptied when full."""

    def __init__(self, size: int):
        self.size, self.items = size, {}

    def get(self, key: str, compute):
        if key not in self.items:
            if len(self.items) > self.size:
                self.items.clear()
            self.items[key] = compute()
        return self.items[key]


_VALUES, _SKIPPED, _JOINED, _CHANCE = IdentityCache(), IdentityCache(), IdentityCache(), IdentityCache()


def values(rows: pd.DataFrame, metric: Metric, law: str, where: str = "the training rows") -> pd.DataFrame:
    """One row per unit of ``metric`` in ``rows``; FitError if absent or ambiguous (cached:
    see :class:`IdentityCache`)."""
    return _VALUES.get((rows,), str(metric), lambda: _values(rows, metric, law, where))


def _values(rows: pd.DataFrame, metric: Metric, law: str, where: str) -> pd.DataFrame:
    mask = (rows["task"].to_numpy(object) == metric.task) & (rows["metric"].to_numpy(object) == metric.metric)
    sel = rows.loc[mask]
    if sel.empty:
        raise FitError(f"{law}: {metric} has no rows in {where} (they hold {present(rows)}); "
                       f"check the TASK:METRIC or widen the query")
    dup = sel.duplicated(UNIT, keep=False)
    if dup.any():
        first = sel.loc[dup].iloc[0]
        step = "final" if pd.isna(first["step"]) else f"step {first['step']}"
        raise FitError(f"{law}: {metric} has more than one row for {first['model']} ({step}) in {where} "
                       f"(different suites or num_fewshot); narrow the query, e.g. add "
                       f"\"and num_fewshot == 0\" or \"and suite == '...'\"")
    return canonical(sel)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """A unit frame's columns in their order, rows ordered by model then step (see _sorted)."""
    return _sorted(frame[UNIT + SCALE + ["value", "stderr"] + [c for c in OPTIONAL if c in frame.columns]])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered by model, then step (final checkpoints last): a canonical order."""
    step = frame["step"].astype("Float64").to_numpy(float, na_value=np.inf)
    order = np.lexsort((step, frame["model"].to_numpy(object).astype(str)))
    out = frame.iloc[order].reset_index(drop=True)
    out["step"] = out["step"].astype("Int64")
    return out


def join(left: pd.DataFrame, right: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """Units present in both (matched on model and step); cached (:class:`IdentityCache`)."""
    def compute():
        r = right[UNIT + ["value", "stderr"]].rename(columns={"value": f"value{suffix}", "stderr": f"stderr{suffix}"})
        return left.merge(r, on=UNIT, how="inner")

    return _JOINED.get((left, right), suffix, compute)


def skip_early(units: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Drop each run's checkpoints before ``fraction`` of its largest token count.

    Bhagia et al. 2024 skip the first 10% of every ladder run (``--skip_perc 0.1``): early
    checkpoints are in warm-up (Pythia: 1% of training) or the high-learning-rate transient and
    follow neither the loss law nor the loss-accuracy link of the rest of the run.  Units with
    no step (final checkpoints) are kept; units with no tokens or compute are always dropped,
    since every law here works on log scales.  Cached (:class:`IdentityCache`).
    """
    return _SKIPPED.get((units,), fraction, lambda: _skip_early(units, fraction))


def _skip_early(units: pd.DataFrame, fraction: float) -> pd.DataFrame:
    keep = (units["tokens"] > 0) & (units["compute_flops"] > 0)
    if fraction > 0:
        stepped = units["step"].notna()
        top = units.loc[stepped].groupby("model")["tokens"].transform("max")
        early = pd.Series(False, index=units.index)
        early.loc[stepped] = units.loc[stepped, "tokens"] < fraction * top
        keep &= ~early
    return units.loc[keep].reset_index(drop=True)


def _non_embedding(units: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(counts, from_table) per unit: the ``params_non_embedding`` column where filled, else the
    families registry (matched by hub id or short name), else NaN."""
    from pipeline.sources import families

    given = units["params_non_embedding"].to_numpy(float) if "params_non_embedding" in units else \
        np.full(len(units), np.nan)
    models = units["model"].astype(str).to_numpy()
    known = {}
    for m in np.unique(models):
        found = families.find(m)
        known[m] = found[1].params_non_embedding if found and found[1].params_non_embedding else np.nan
    registry = np.array([known[m] for m in models], float)
    from_table = np.isfinite(given)
    return np.where(from_table, given, registry), from_table


def param_counts(units: pd.DataFrame, kind: str) -> np.ndarray:
    """N for each unit: published total (``params``) or non-embedding parameters ("auto": the
    non-embedding counts if all are known, else the totals).

    Non-embedding counts (Kaplan et al. 2020 found the cleanest laws with them; small Pythia
    models are mostly embedding: 70M total, 19M non-embedding) come from the table's
    ``params_non_embedding`` column, else from the families registry.
    """
    if kind == "total":
        return units["params"].to_numpy(float)
    if kind not in ("non_embedding", "auto"):
        raise FitError(f"params must be 'auto', 'total' or 'non_embedding', not {kind!r}")
    out, _ = _non_embedding(units)
    if np.isnan(out).any():
        if kind == "auto":
            return units["params"].to_numpy(float)
        missing = units["model"].astype(str).to_numpy()[np.isnan(out)][0]
        raise FitError(f"non-embedding parameter count unknown for {missing}; fill the params_non_embedding "
                       f"column of its rows or use params: total")
    return out


def param_kind(units: pd.DataFrame, kind: str) -> str:
    """Resolve ``kind="auto"``: non-embedding when every unit's count is known, else total."""
    if kind != "auto":
        return kind
    try:
        param_counts(units, "non_embedding")
        return "non_embedding"
    except FitError:
        return "total"


def param_source(units: pd.DataFrame, kind: str) -> str:
    """Which N a law used, for logs: "non-embedding (table 14, registry 2 of 16 models)" or "total (...)"."""
    models = units["model"].astype(str)
    n = models.nunique()
    if kind == "total":
        counts, _ = _non_embedding(units)
        unknown = models[np.isnan(counts)].nunique()
        why = f"; non-embedding unknown for {unknown} of {n} models" if unknown else ""
        return f"total ({n} models{why})"
    _, from_table = _non_embedding(units)
    table = models[from_table].nunique()
    parts = [f"table {table}" if table else "", f"registry {n - table}" if n - table else ""]
    return f"non-embedding ({', '.join(p for p in parts if p)} of {n} models)"


def unit_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Every unit in ``rows`` once, with its scale columns (for forecasting without actuals)."""
    extra = [c for c in ("params_non_embedding",) if c in rows.columns]
    u = rows.drop_duplicates(UNIT)[UNIT + SCALE + extra].copy()
    u["step"] = u["step"].astype("Int64")
    u["value"], u["stderr"] = np.nan, np.nan
    return _sorted(u)


def targets_to_predict(rows: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Units to predict: those with a ``metric`` row in ``rows`` (actual = its value), or, if
    there are none, every unit in ``rows`` (a forecast; actual empty)."""
    sel = rows[(rows["task"] == metric.task) & (rows["metric"] == metric.metric)]
    if sel.empty:
        return _with_scale(unit_frame(rows), metric)
    return _with_scale(values(rows, metric, "predict", "the rows to predict"), metric)


def _with_scale(units: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """``units``, or FitError naming the first one with tokens or compute 0: every law works on
    log N, D or C, so such a checkpoint (initialisation) has no point on its axis to predict."""
    bad = units[~((units["tokens"] > 0) & (units["compute_flops"] > 0))]
    if len(bad):
        first = bad.iloc[0]
        step = "final" if pd.isna(first["step"]) else f"step {first['step']}"
        raise FitError(f"predict {metric}: {first['model']} ({step}) has tokens {first['tokens']:g} and compute_flops "
                       f"{first['compute_flops']:g}, no scale to predict from ({len(bad)} such checkpoint(s) among "
                       "the rows to predict); leave them out, e.g. add \"and tokens > 0\" to --test")
    return units


def with_extra(units: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Carry optional per-unit columns (params_non_embedding) from ``rows`` onto ``units``."""
    if "params_non_embedding" not in rows.columns or "params_non_embedding" in units.columns:
        return units
    extra = rows.drop_duplicates(UNIT)[UNIT + ["params_non_embedding"]]
    return units.merge(extra, on=UNIT, how="left")


def need(n_have: int, n_need: int, law: str, what: str, hint: str = "widen --train") -> None:
    if n_have < n_need:
        raise FitError(f"{law}: {n_have} training {what} for the {n_need} parameters of the law; {hint}")


# ----------------------------------------------------------------------------- row sets
ROW_SETS = ("all", "final", "frontier")
BUDGET_DECIMALS = 1  # compute budgets: log10 C rounded to 0.1 decades (the runs of one isoFLOP budget)


def row_set(rows: pd.DataFrame, metric: Metric, how: str) -> pd.DataFrame:
    """``rows`` restricted to the checkpoints a law fits on: ``how`` is "all" (every checkpoint),
    "final" (each run's last checkpoint of ``metric``) or "frontier" (the compute-efficient
    frontier of ``metric``: the best checkpoint of each compute budget, kept where it beats
    every smaller budget, as a practitioner reads an isoFLOP plot).  Rows of other metrics
    (a two-step law's loss) follow the checkpoints kept."""
    if how == "all":
        return rows
    if how not in ROW_SETS:
        raise FitError(f"rows must be one of {', '.join(ROW_SETS)}, not {how!r}")
    units = values(rows, metric, "rows")
    units = units.loc[(units["tokens"] > 0) & (units["compute_flops"] > 0)]
    keep = final_units(units) if how == "final" else frontier_units(units, metric)
    key = pd.MultiIndex.from_frame(keep[UNIT].astype({"model": str}))
    mine = pd.MultiIndex.from_frame(rows[UNIT].astype({"model": str}))
    return rows.loc[mine.isin(key)]


def final_units(units: pd.DataFrame) -> pd.DataFrame:
    """Each run's last checkpoint (most tokens)."""
    last = units["tokens"] == units.groupby("model")["tokens"].transform("max")
    return units.loc[last].drop_duplicates("model", keep="last")


def budget_of(compute_flops) -> np.ndarray:
    """The compute budget of each value: log10 FLOPs rounded to ``BUDGET_DECIMALS`` (the runs of one
    isoFLOP budget share it)."""
    return np.round(np.log10(np.asarray(compute_flops, float)), BUDGET_DECIMALS)


def budget_best_units(units: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Per compute budget (log10 C to ``BUDGET_DECIMALS``) the unit of best value, in order of
    compute (an isoFLOP sweep's compute-optimal run; a ladder of one run per budget: every run),
    with the helper columns ``_budget`` and ``_score`` (the value, higher better)."""
    better = -1.0 if metric.kind == "loss" else 1.0
    u = units.assign(_budget=budget_of(units["compute_flops"]), _score=better * units["value"].to_numpy(float))
    return u.sort_values(["_budget", "_score", "model"], kind="mergesort").drop_duplicates("_budget", keep="last")


def frontier_units(units: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The compute-efficient frontier of ``units``: per compute budget (log10 C to
    ``BUDGET_DECIMALS``) the best value, kept where it improves on every smaller budget."""
    best = budget_best_units(units, metric)
    record = best["_score"].cummax()
    on_front = best["_score"].to_numpy() >= record.to_numpy()
    return best.loc[on_front].drop(columns=["_budget", "_score"])
