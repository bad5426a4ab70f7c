"""How the families compare in compute efficiency (``forecast.family_comparison``), written by the
forecast stage as ``reports/family_offsets.csv`` and ``reports/capability.csv``.

A capability score per model (first principal component of the suite's benchmark accuracies,
the "observational" view of Ruan et al. 2024) is regressed on log10 compute with one shared slope
and one intercept per family; family X reaches the reference family's capability at
k = 10^((b_ref - b_X) / slope) times the compute.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from pipeline import scores
from pipeline.forecasting.targets import ForecastError

OFFSET_COLUMNS = ["suite", "family", "reference", "models", "tasks", "min_compute_flops", "max_compute_flops",
                  "slope", "own_slope", "intercept",
                  "log10_k", "k", "level", "k_lower", "k_upper", "r2"]
CAPABILITY_COLUMNS = ["suite", "family", "model", "params", "tokens", "compute_flops", "capability", "in_fit"]


def capability_scores(table: pd.DataFrame, suite: str, tasks: list | None = None,
                      num_fewshot: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """First principal component of a suite's accuracy matrix (models x tasks), one score per model.

    Uses final checkpoints, accuracy metrics, one (metric, shots) per task (the most frequent), the
    tasks given (default: every accuracy task that all but a few models have) and the models that
    have all of them.  Columns are standardised before the SVD; the sign makes the score rise with
    mean accuracy.  Returns (scores per model, tasks used).
    """
    rows = scores.final_checkpoints(table[table["suite"] == suite])
    rows = rows[rows["metric"].map(scores.metric_kind) == "accuracy"]
    if num_fewshot is not None:
        rows = rows[rows["num_fewshot"] == num_fewshot]
    if tasks:
        rows = rows[rows["task"].isin(tasks)]
    if rows.empty:
        raise ForecastError(f"family comparison: suite {suite!r} has no accuracy rows for tasks {tasks}")
    # one (metric, shots) per task: the most frequent, ties broken by name for determinism
    cfgs = (rows.groupby(["task", "metric", "num_fewshot"], dropna=False).size().rename("n").reset_index()
            .sort_values(["task", "n", "metric"], ascending=[True, False, True], kind="mergesort")
            .drop_duplicates("task"))
    rows = rows.merge(cfgs[["task", "metric", "num_fewshot"]], on=["task", "metric", "num_fewshot"])
    wide = rows.pivot_table(index="model", columns="task", values="value", aggfunc="first")
    if not tasks:  # keep tasks that at least 90% of models have, then complete models
        wide = wide.loc[:, wide.notna().mean() >= 0.9]
    wide = wide.dropna()
    if wide.shape[0] < 3 or wide.shape[1] < 2:
        raise ForecastError(f"family comparison: suite {suite!r} has {wide.shape[0]} models with all of "
                            f"{wide.shape[1]} tasks; need at least 3 models and 2 tasks")
    z = (wide - wide.mean()) / wide.std(ddof=0).replace(0, 1)
    _, _, vt = np.linalg.svd(z.to_numpy(), full_matrices=False)
    load = vt[0] * (1 if vt[0].sum() >= 0 else -1)
    pc1 = z.to_numpy() @ load
    meta = (rows.drop_duplicates("model").set_index("model")[["family", "params", "tokens", "compute_flops"]]
            .loc[wide.index])
    out = meta.assign(suite=suite, capability=pc1, in_fit=True).reset_index()
    return out[CAPABILITY_COLUMNS].sort_values(["family", "compute_flops", "model"], kind="mergesort"), list(wide.columns)


def common_range(cap: pd.DataFrame, families: list[str], margin: float) -> pd.DataFrame:
    """Models whose compute lies in the range all ``families`` cover (widened by ``margin`` x on each
    side): where the families' slopes differ, an offset is only meaningful where they overlap."""
    d = cap[cap["family"].isin(families) & (cap["compute_flops"] > 0)]
    by = d.groupby("family")["compute_flops"]
    lo, hi = by.min().max() / margin, by.max().min() * margin
    return d[(d["compute_flops"] >= lo) & (d["compute_flops"] <= hi)]


def shared_slope_fit(cap: pd.DataFrame, families: list[str], reference: str, interval: float) -> pd.DataFrame:
    """OLS capability = slope * log10(C) + b_family; k and its interval (delta method, t quantile).

    Also each family's own slope (a separate line per family), to show whether sharing one is fair.
    """
    d = cap[cap["family"].isin(families) & (cap["compute_flops"] > 0)]
    fams = [f for f in families if (d["family"] == f).sum() >= 2]
    if reference not in fams:
        raise ForecastError(f"family comparison: reference family {reference!r} has fewer than 2 models in "
                            f"suite {cap['suite'].iloc[0]!r}")
    d = d[d["family"].isin(fams)]
    x = np.log10(d["compute_flops"].to_numpy())
    X = np.column_stack([x] + [(d["family"] == f).to_numpy(float) for f in fams])
    y = d["capability"].to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    dof = max(len(y) - X.shape[1], 1)
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.pinv(X.T @ X)
    r2 = 1.0 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    tq = stats.t.ppf(0.5 + interval / 2, dof)
    slope = beta[0]
    ir = 1 + fams.index(reference)
    rows = []
    for j, fam in enumerate(fams, start=1):
        logk = (beta[ir] - beta[j]) / slope
        grad = np.zeros(len(beta))
        grad[0] = -logk / slope
        grad[ir] += 1 / slope
        grad[j] -= 1 / slope
        se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
        own = d[d["family"] == fam]
        own_slope = np.polyfit(np.log10(own["compute_flops"].to_numpy()), own["capability"].to_numpy(), 1)[0]
        rows.append({"suite": d["suite"].iloc[0], "family": fam, "reference": reference,
                     "models": int((d["family"] == fam).sum()),
                     "min_compute_flops": float(own["compute_flops"].min()),
                     "max_compute_flops": float(own["compute_flops"].max()),
                     "slope": slope, "own_slope": own_slope, "intercept": beta[j],
                     "log10_k": logk, "k": 10 ** logk, "level": interval, "k_lower": 10 ** (logk - tq * se),
                     "k_upper": 10 ** (logk + tq * se), "r2": r2})
    return pd.DataFrame(rows)


def family_comparison(table: pd.DataFrame, cfg: dict, interval: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All ``forecast.family_comparison`` entries -> (offsets, capability scores)."""
    offsets, caps = [], []
    for i, c in enumerate(cfg.get("family_comparison") or []):
        suite = c["suite"]
        cap, tasks = capability_scores(table, suite, c.get("tasks"), c.get("num_fewshot"))
        fams = list(c["families"])
        missing = [f for f in fams if f not in set(cap["family"])]
        if missing:  # a typo would compare the others among themselves without a word
            raise ForecastError(f"params.yaml forecast.family_comparison[{i}].families: {missing[0]!r} has no models "
                                f"with every task in suite {suite!r} (families there: "
                                f"{', '.join(sorted(cap['family'].astype(str).unique()))}); fix the name")
        cap = cap[cap["family"].isin(fams)]
        used = common_range(cap, fams, float(c["common_range_margin"])) if c.get("common_range_margin") else cap
        off = shared_slope_fit(used, fams, c.get("reference", fams[0]), interval)
        off["tasks"] = " ".join(tasks)
        offsets.append(off[OFFSET_COLUMNS])
        caps.append(cap.assign(in_fit=cap.index.isin(used.index)))
    if not offsets:
        return pd.DataFrame(columns=OFFSET_COLUMNS), pd.DataFrame(columns=CAPABILITY_COLUMNS)
    return pd.concat(offsets, ignore_index=True), pd.concat(caps, ignore_index=True)
