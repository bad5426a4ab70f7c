"""Hold out the top of a ladder: fit on the runs at least ``factor`` x below the top compute,
predict the top runs' final checkpoints.

For a factor k, the training runs are those whose final compute is at most C_top / k (all their
checkpoints), and the predicted runs are those at the top rung (final compute within
``TOP_RUNG`` of C_top: the largest size, or the run planned beyond an isoFLOP sweep's budgets).
Each prediction carries its own distance in decades of compute beyond the largest training run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.ladders.collection import Ladder

TOP_RUNG = 1.5  # runs within this factor of the top compute are the ones predicted


@dataclass(frozen=True)
class Holdout:
    ladder: Ladder
    factor: float
    train: pd.DataFrame  # every row of the training runs
    test: pd.DataFrame  # rows of the top runs' final checkpoints


def run_compute(rows: pd.DataFrame, target: str) -> pd.Series:
    """Final (largest) training compute of each run of ``target``, by model."""
    task, _, metric = target.rpartition(":")
    sel = rows.loc[(rows["task"] == task) & (rows["metric"] == metric) & (rows["compute_flops"] > 0)]
    return sel.groupby(sel["model"].astype(str))["compute_flops"].max()


def holdouts(ladder: Ladder, factors, min_train_runs: int = 3) -> list[Holdout]:
    """One :class:`Holdout` per factor that leaves ``min_train_runs`` runs of distinct sizes to fit."""
    compute = run_compute(ladder.rows, ladder.target)
    if compute.empty:
        return []
    top = float(compute.max())
    test_models = set(compute.index[compute >= top / TOP_RUNG])
    models = ladder.rows["model"].astype(str)
    test = _final_rows(ladder.rows.loc[models.isin(test_models).to_numpy()])
    out = []
    for k in factors:
        train_models = set(compute.index[compute <= top / float(k)])
        train = ladder.rows.loc[models.isin(train_models).to_numpy()]
        sizes = np.unique(np.round(np.log10(train["params"].to_numpy(float)), 2)).size
        if len(train_models) >= min_train_runs and sizes >= min(min_train_runs, 3):
            out.append(Holdout(ladder, float(k), train, test))
    return out


def _final_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's last checkpoint (most tokens), every task and metric."""
    last = rows["tokens"] == rows.groupby(rows["model"].astype(str))["tokens"].transform("max")
    return rows.loc[last.to_numpy()]
