"""The scoring benchmarks run (their numbers are in docs/laws.md; here only that they still work)."""
from __future__ import annotations

import sys

import numpy as np

from tests.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import synthetic_ladders  # noqa: E402


def test_synthetic_ladders_are_reproducible_and_score_every_method():
    a, b = synthetic_ladders.run(2, seed=1, bootstrap=0), synthetic_ladders.run(2, seed=1, bootstrap=0)
    assert a.equals(b)
    table = synthetic_ladders.summary(a)
    assert set(table["kind"]) == {"sizes", "budgets"}
    assert set(table["method"]) == set(synthetic_ladders.METHODS)
    assert np.isfinite(table["mae"]).all() and (table["mae"] > 0).all()


def test_a_synthetic_ladder_is_scored_on_sizes_beyond_its_training_rows():
    rows, _ = synthetic_ladders.ladder("budgets", np.random.default_rng(0))
    train, test = synthetic_ladders.split("budgets", rows)
    acc = rows["metric"] == "acc"
    assert test.loc[test["metric"] == "acc", "params"].min() > train["params"].max()
    assert rows.loc[acc, "value"].between(0, 1).all() and (rows.loc[~acc, "value"] > 0).all()
