"""Leave one ladder group out: the auto forecast and every method's interval, judged on ladders
they learned nothing from.

For each ladder group g (a real recipe, or a fold of simulated ladders), a policy is learned on
every other group (:class:`pipeline.laws.policy.Policy`) and applied to g's forecasts: the auto
forecast combines g's candidate predictions with the weights learned elsewhere, and every
method's interval comes from its errors elsewhere.  The scores of :mod:`pipeline.ladders.scoring`
on these out-of-group forecasts are the leave-one-ladder-out table.

The auto forecast's interval is the mixture of g's candidates' out-of-group intervals with the
out-of-group weights (:meth:`pipeline.laws.policy.Policy.auto_interval`), as a forecast makes it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.laws.policy import AUTO, Policy, prediction_matrix, with_spread

OUT = ["lower", "upper"]


def auto_forecasts(table: pd.DataFrame, candidates: list[str], level: float,
                   learn_from: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of candidate ``auto``: each group's units forecast with weights learned without it
    (from ``learn_from``'s other groups: by default the table's)."""
    learn_from = table if learn_from is None else learn_from
    out = []
    for group in sorted(table["group"].unique()):
        policy = Policy.learn(learn_from, candidates, level, exclude=[group], intervals=False)
        mine = table.loc[table["group"] == group]
        units, P = prediction_matrix(mine, candidates, fill=False)
        if not len(units):
            continue
        point = policy.combine(units, P)
        out.append(units.assign(candidate=AUTO, predicted=point,
                                status=np.where(np.isfinite(point), "ok", "failed: no candidate")))
    return pd.concat(out, ignore_index=True)[table.columns] if out else table.iloc[:0]


def out_of_group_intervals(table: pd.DataFrame, candidates: list[str], level: float,
                           learn_from: pd.DataFrame | None = None) -> pd.DataFrame:
    """``table`` with ``lower`` and ``upper`` for every forecast, each from a policy learned without
    its group (from ``learn_from``'s other groups: by default the table's)."""
    learn_from = table if learn_from is None else learn_from
    parts = []
    for group in sorted(table["group"].unique()):
        mine = table.loc[table["group"] == group].copy()
        auto = (mine["candidate"] == AUTO) & (mine["status"] == "ok")
        policy = Policy.learn(learn_from, candidates, level, exclude=[group], weights=bool(auto.any()))
        mine["lower"], mine["upper"] = np.nan, np.nan
        for method, rows in mine.loc[(mine["status"] == "ok") & ~auto].groupby("candidate"):
            if method not in policy.intervals:
                continue
            lo, hi = policy.interval(str(method), rows["predicted"].to_numpy(float), rows)
            mine.loc[rows.index, "lower"], mine.loc[rows.index, "upper"] = lo, hi
        if auto.any():
            mine.loc[auto, "lower"], mine.loc[auto, "upper"] = _auto_intervals(mine, auto, policy)
        parts.append(mine)
    return pd.concat(parts).sort_index()


def _auto_intervals(mine: pd.DataFrame, auto: pd.Series, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """The auto rows' intervals: the mixture of the same units' candidate forecasts, as a forecast
    makes it (:meth:`pipeline.laws.policy.Policy.auto_interval`)."""
    key = ["ladder", "factor", "model"]
    rows = mine.loc[auto]
    units, P = prediction_matrix(mine.loc[~auto & (mine["status"] == "ok")], policy.candidates, fill=False)
    at = pd.MultiIndex.from_frame(units[key]).get_indexer(pd.MultiIndex.from_frame(rows[key]))
    P = np.vstack([P, np.full((1, P.shape[1]), np.nan)])[at]  # -1 (no candidate forecast): the NaN row
    return policy.auto_interval(rows["predicted"].to_numpy(float), rows, P)


def evaluate(table: pd.DataFrame, candidates: list[str], level: float = 0.9) -> pd.DataFrame:
    """Every candidate's and the auto forecast's out-of-group forecasts with their intervals."""
    table = with_spread(table)
    full = pd.concat([table, auto_forecasts(table, candidates, level)], ignore_index=True)
    return out_of_group_intervals(full, candidates, level)


def beyond_support(table: pd.DataFrame, candidates: list[str], level: float, learned_at, scored_at: float
                   ) -> pd.DataFrame:
    """How the policy holds past the distances it learned from: weights and intervals learned from
    the holdouts at factors ``learned_at`` alone (auto's first pass too), every group's forecasts
    at ``scored_at`` judged out of group, as :func:`evaluate` judges them at every factor."""
    table = with_spread(table.loc[table["candidate"] != AUTO])
    near = list(learned_at)
    full = pd.concat([table, auto_forecasts(table, candidates, level, table.loc[table["factor"].isin(near)])],
                     ignore_index=True)
    far = full.loc[full["factor"] == scored_at]
    return out_of_group_intervals(far, candidates, level, full.loc[full["factor"].isin(near)])


def new_design(table: pd.DataFrame, candidates: list[str], level: float) -> pd.DataFrame:
    """How the policy does on a kind of ladder it has never seen: each simulated design left out
    whole (weights, intervals and auto's first pass learned from the real ladders and the other
    designs), its forecasts judged as :func:`evaluate` judges them.  The usual grouping leaves out a
    fold of seeds, which holds ladders of every design: a design's own generator is then among
    what the policy learned from.  Only the simulated ladders' forecasts are returned."""
    table = table.loc[table["candidate"] != AUTO]
    table = with_spread(table.assign(group=np.where(table["kind"] == "real", table["group"],
                                                    "design:" + table["kind"].astype(str))))
    simulated = table["kind"] != "real"
    full = pd.concat([table, auto_forecasts(table.loc[simulated], candidates, level, table)], ignore_index=True)
    return out_of_group_intervals(full.loc[full["kind"] != "real"], candidates, level, full)
