"""Families compared by the skill law (pipeline/laws/skills.py): written by the forecast stage as
``reports/family_skills.csv``.

For each entry of ``forecast.family_skills`` the law is fitted on the entry's rows (every family
at once, every benchmark) and read out per family and skill: the family's shift against the
reference family (logits of the skill's anchor benchmark) and the compute multiplier k -- the
family needs k times the reference's compute to reach the skill the reference has at the entry's
(params, tokens), both scaled along that tokens-per-parameter ratio -- each with its bootstrap
interval.  Beside them: how well the same law predicted that family when it was held out but for
its smallest model (the entry's ``backtest_split`` in reports/backtest_predictions.csv), and a
baseline method's error on the same predictions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import query, scores
from pipeline.errors import CapcastError

COLUMNS = ["comparison", "family", "reference", "models", "n_skills", "skill", "anchor", "shift", "shift_lower",
           "shift_upper", "k", "k_lower", "k_upper", "at_params", "at_tokens", "level", "form", "lofo_split",
           "lofo_n", "lofo_mae", "lofo_coverage", "baseline", "baseline_mae"]


def family_skills(table: pd.DataFrame, entries: list, interval: float, seed: int,
                  predictions: pd.DataFrame | None) -> pd.DataFrame:
    """Every ``forecast.family_skills`` entry -> one row per (entry, family, skill)."""
    from pipeline.laws import make

    out = []
    for i, e in enumerate(entries or []):
        where = f"params.yaml forecast.family_skills[{i}]"
        rows = query.select(table, e["rows"], f"{where} rows", error=CapcastError)
        accuracy = rows[rows["metric"].astype(str).map(scores.metric_kind) == "accuracy"]
        if accuracy.empty:
            raise CapcastError(f"{where}: the rows hold no accuracy metric for the skill law; widen rows")
        target = sorted(f"{t}:{m}" for t, m in set(zip(accuracy["task"], accuracy["metric"])))[0]
        law = make("skills", target=target, level=interval, random_state=seed, **(e.get("options") or {})).fit(rows)
        t = law.family_table(str(e["reference"]), float(e["params"]), float(e["tokens"]))
        t = t.assign(comparison=e.get("name", f"{i}"), n_skills=law.n_skills_, at_params=float(e["params"]),
                     at_tokens=float(e["tokens"]), level=interval, form=law.form_)
        out.append(_with_backtest(t, predictions, e.get("backtest_split"), e.get("baseline", "sigmoid")))
    if not out:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(out, ignore_index=True).reindex(columns=COLUMNS)


def _with_backtest(t: pd.DataFrame, predictions: pd.DataFrame | None, split, baseline: str) -> pd.DataFrame:
    """Each family's held-out error (points) in ``split``: the skill law's MAE, coverage and n,
    and ``baseline``'s MAE on the same (model, task) predictions."""
    t = t.assign(lofo_split=split or "", baseline=baseline)
    cols = ["lofo_n", "lofo_mae", "lofo_coverage", "baseline_mae"]
    if predictions is None or not split or predictions.empty:
        return t.assign(**{c: np.nan for c in cols})
    p = predictions[predictions["split"] == split].copy()
    p["family_out"] = p["fold"].astype(str).str.rpartition("/")[2]
    p = p[np.isfinite(p["predicted"].astype(float)) & np.isfinite(p["actual"].astype(float))]
    p["error"] = 100.0 * np.abs(p["predicted"].astype(float) - p["actual"].astype(float))
    p["inside"] = (p["actual"] >= p["lower"]) & (p["actual"] <= p["upper"])
    key = ["family_out", "model", "task", "metric"]
    own = p[p["method"] == "skills"]
    base = own[key].merge(p[p["method"] == baseline][key + ["error"]], on=key, how="left")
    stats = own.groupby("family_out").agg(lofo_n=("error", "size"), lofo_mae=("error", "mean"),
                                          lofo_coverage=("inside", "mean"))
    stats["baseline_mae"] = base.groupby("family_out")["error"].mean()
    return t.merge(stats, left_on="family", right_index=True, how="left")


def read_predictions(path: Path) -> pd.DataFrame | None:
    """The backtest stage's predictions, or None where it has not run."""
    return pd.read_csv(path) if Path(path).exists() else None
