"""Leave-the-top-out on every ladder: fit every candidate method below the top, predict the top.

The result is one row per (ladder, factor, candidate, predicted run): the prediction (or why there
is none), the actual value and the features of the forecast problem that the interval and the
choice of method may depend on (:func:`features`).  Nothing about the predicted runs enters a
fit: their values are read only into the ``actual`` column.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.errors import CapcastError
from pipeline.ladders.collection import Ladder, chance_of
from pipeline.ladders.holdout import Holdout, holdouts
from pipeline.laws.data import Metric, values
from pipeline.laws.policy import FEATURES, ladder_features

KEY = ["ladder", "group", "kind", "factor", "candidate", "model"]
COLUMNS = KEY + ["params", "tokens", "compute_flops", "chance", "actual", "stderr", "predicted", "status"] + FEATURES


def fit_predict(method: str, options: dict, holdout: Holdout, loss: str | None) -> pd.DataFrame:
    """One candidate's predictions of the held-out runs (model, predicted); CapcastError if it fails."""
    from pipeline import laws

    opts = dict(options)
    if method in ("two_step", "link"):
        if loss is None:
            raise NotApplicable("no loss recorded on this ladder")
        opts.setdefault("loss", loss)
    law = laws.make(method, target=holdout.ladder.target, n_bootstrap=0, **opts).fit(holdout.train)
    pred = law.predict(holdout.test)
    return pred[["model", "predicted"]]


class NotApplicable(CapcastError):
    """The candidate cannot run on this ladder by design (a two-step law without a loss)."""


def run_ladder(ladder: Ladder, candidates: dict, factors) -> pd.DataFrame:
    """Every candidate on every holdout of ``ladder``: rows of :data:`COLUMNS` (numpy's overflow
    warnings of fits that fail are silenced: a failure is recorded in ``status``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _run_ladder(ladder, candidates, factors)


def _run_ladder(ladder: Ladder, candidates: dict, factors) -> pd.DataFrame:
    chance = chance_of(ladder)
    target = Metric.parse(ladder.target)
    out = []
    for hold in holdouts(ladder, factors):
        feats = ladder_features(hold.train, ladder.target, chance)
        test = values(hold.test, target, "ladder", "the held-out runs")
        base = test[["model", "params", "tokens", "compute_flops", "value", "stderr"]].rename(columns={"value": "actual"})
        base = base.assign(ladder=ladder.name, group=ladder.group, kind=ladder.kind, factor=hold.factor, chance=chance,
                           distance=np.log10(base["compute_flops"].to_numpy(float)) - feats["log_c_max"],
                           **{k: v for k, v in feats.items() if k != "log_c_max"})
        for name, (method, options) in candidates.items():
            rows = base.assign(candidate=name)
            try:
                pred = fit_predict(method, options, hold, ladder.loss)
                rows = rows.merge(pred, on="model", how="left")
                rows["status"] = np.where(np.isfinite(rows["predicted"].to_numpy(float)), "ok", "failed: no prediction")
            except NotApplicable as exc:
                rows = rows.assign(predicted=np.nan, status=f"n/a: {exc}")
            except CapcastError as exc:
                rows = rows.assign(predicted=np.nan, status=f"failed: {_first_line(exc)}")
            out.append(rows)
    if not out:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(out, ignore_index=True)[COLUMNS]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def run(ladders: list[Ladder], candidates: dict, factors, processes: int = 1, progress=None) -> pd.DataFrame:
    """:func:`run_ladder` over ``ladders`` (in forked workers; same rows whatever ``processes``)."""
    from pipeline.parallel import fork_map

    frames = fork_map(lambda ladder: run_ladder(ladder, candidates, factors), ladders, processes)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
