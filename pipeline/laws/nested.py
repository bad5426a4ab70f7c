"""Nested extrapolation inside the training rows: hold out the top rung, fit on the rest, score.

A forecast is asked of a model larger than any the law was fitted on, so that is what capcast
checks before it trusts a choice: inside the training rows alone it holds out the *top rung* of
the ladder, fits every candidate (a law's form, its step-1 rows, or a whole method) on the rest,
and scores each candidate's error on the held-out rung.  The choice is made from those errors and
the law is then refitted on all training rows.  None of the anchor methods does this (Bhagia et
al. 2024, Ruan et al. 2024 and Krajewski et al. 2025 each fix their forms a priori); it is how a
choice stops depending on one family's shape.

The top rung is the largest model size (all its checkpoints) when at least ``MIN_RUNGS`` smaller
sizes remain to fit on -- the top compute budget where the ladder is isoFLOP sweeps (several
sizes per budget); otherwise (few sizes, or one model over its checkpoints) the units in the
top ``1 - TOP_QUANTILE`` of training compute.  Scored is each held-out model's last checkpoint,
the models weighted equally: a forecast is asked of finished runs, and on a ladder of runs
with their own learning-rate schedules a mid-run checkpoint is not what a finished run of that
D scores.

Everything here is a function of the training rows only: the rows a backtest holds out never
reach it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import CapcastError
from pipeline.laws import data
from pipeline.laws.data import Metric

MIN_RUNGS = 3  # distinct smaller sizes an inner fit needs (an L(N, D) law needs three)
MIN_UNITS = 3  # inner training units of the target, at least
TOP_QUANTILE = 0.9
SIZE_DECIMALS = 2  # sizes within ~2% (log10 rounded to 0.01) are one rung: pythia and pythia-deduped
MIN_DISTANCE = 0.05  # decades: below this an inner error says nothing about a rate per decade
SIZES_PER_BUDGET = 1.5  # sizes per compute budget, on average, that make a ladder isoFLOP sweeps
FOLDS = 2  # inner splits: the top rung, then the top two rungs (fewer where the rows run out)


@dataclass
class InnerSplit:
    """Training rows split into an inner fit and its held-out top rung."""

    train: pd.DataFrame  # rows (every task and metric) of the inner training units
    test: pd.DataFrame  # rows of the held-out units (every task and metric)
    scored: pd.DataFrame  # the target's scored held-out units: model, step, value, stderr, weight, distance
    rung: str  # what was held out, for logs and reports
    log10_c_max: float  # largest training compute of the target's inner training units (log10 FLOPs)


def _units(rows: pd.DataFrame, target: Metric) -> pd.DataFrame:
    units = data.values(rows, target, "nested")
    return units.loc[(units["tokens"] > 0) & (units["compute_flops"] > 0)].reset_index(drop=True)


_SPLITS = data.IdentityCache(64)


def inner_splits(rows: pd.DataFrame, target: Metric | str, folds: int = 1, min_rungs: int = MIN_RUNGS) -> list[InnerSplit]:
    """Up to ``folds`` nested holdouts: fold k holds out the top k rungs (fewer where the rows
    run out of rungs); [] when not even one is possible.

    Cached per rows object and target: every method of a backtest fold splits the same rows.
    """
    return _SPLITS.get((rows,), (str(target), folds, min_rungs),
                       lambda: _inner_splits(rows, target, folds, min_rungs))


def _inner_splits(rows, target, folds, min_rungs) -> list[InnerSplit]:
    out = []
    for k in range(1, folds + 1):
        split = inner_split(rows, target, min_rungs, top=k)
        # a further fold must hold out more, and the same kind of rung (sizes, budgets, or compute)
        if split is None or (out and (len(split.test) <= len(out[-1].test)
                                      or _rung_kind(split.rung) != _rung_kind(out[-1].rung))):
            break
        out.append(split)
    return out


def _rung_kind(rung: str) -> str:
    return "size" if "size" in rung else "budget" if "budget" in rung else "compute"


def inner_split(rows: pd.DataFrame, target: Metric | str, min_rungs: int = MIN_RUNGS, top: int = 1) -> InnerSplit | None:
    """The top-rung holdout of ``rows`` for ``target`` (the top ``top`` rungs), or None when the
    rows are too few to split."""
    target = Metric.parse(target)
    try:
        units = _units(rows, target)
    except CapcastError:  # no or ambiguous target rows: the law's own fit says so in its words
        return None
    if len(units) < MIN_UNITS + 1:
        return None
    log_c = np.log10(units["compute_flops"].to_numpy(float))
    sizes = np.round(np.log10(units["params"].to_numpy(float)), SIZE_DECIMALS)
    distinct = np.unique(sizes)
    budgets = _budgets_of_runs(units)
    distinct_budgets = np.unique(budgets) if budgets is not None else np.array([])
    if distinct_budgets.size >= min_rungs + top:
        cut = distinct_budgets[-top]
        held_models = set(budgets.index[budgets >= cut])
        held = units["model"].astype(str).isin(held_models).to_numpy()
        keep_rows = ~rows["model"].astype(str).isin(held_models).to_numpy()
        what = (f"{'top compute budget' if top == 1 else f'{top} top compute budgets'} >= "
                f"{data.final_units(units.loc[held])['compute_flops'].min():.3g} FLOPs "
                f"({len(held_models)} run{'s' * (len(held_models) > 1)})")
    elif distinct.size >= min_rungs + top:
        cut = distinct[-top]
        held_models = set(units.loc[sizes >= cut, "model"].astype(str))
        held = units["model"].astype(str).isin(held_models).to_numpy()
        keep_rows = ~rows["model"].astype(str).isin(held_models).to_numpy()
        # the smallest held-out size as it is, not the rounded cut (3.2e9, not 3.24e9)
        what = (f"{'largest size' if top == 1 else f'{top} largest sizes'} >= {units.loc[held, 'params'].min():.3g} "
                f"params ({len(held_models)} model{'s' * (len(held_models) > 1)})")
    else:
        threshold = float(np.quantile(log_c, 1 - top * (1 - TOP_QUANTILE)))
        held = log_c >= threshold
        if held.all():
            return None
        keep_rows = np.log10(np.maximum(rows["compute_flops"].to_numpy(float), 1e-300)) < threshold
        what = f"top {top * (1 - TOP_QUANTILE):.0%} of compute (>= {10 ** threshold:.3g} FLOPs, {int(held.sum())} checkpoints)"
    if (~held).sum() < MIN_UNITS or not held.any():
        return None
    train = rows.loc[keep_rows]
    test_units = units.loc[held]
    test = rows.merge(test_units[data.UNIT], on=data.UNIT, how="inner")
    log_c_max = float(log_c[~held].max())
    return InnerSplit(train, test, _scored(test_units, log_c_max), what, log_c_max)


def _budgets_of_runs(units: pd.DataFrame) -> pd.Series | None:
    """Each run's final compute budget (log10 FLOPs to ``data.BUDGET_DECIMALS``) where the ladder
    is laid out in isoFLOP sweeps (``SIZES_PER_BUDGET`` or more sizes per budget on average), else
    None.  There the top rung is the top budget: its largest size alone is an off-optimal run whose
    budget's other runs would stay in the fit.  A multi-budget ladder (several token budgets per
    size) keeps the largest size as its rung: the size beyond the ladder is what is asked of it."""
    final = data.final_units(units)
    size = np.round(np.log10(final["params"].to_numpy(float)), SIZE_DECIMALS)
    budget = data.budget_of(final["compute_flops"])
    per_budget = pd.DataFrame({"size": size, "budget": budget}).groupby("budget")["size"].nunique().mean()
    if per_budget < SIZES_PER_BUDGET:
        return None
    return pd.Series(budget, index=final["model"].astype(str).to_numpy())


def _scored(held: pd.DataFrame, log_c_max: float) -> pd.DataFrame:
    """Each held-out model's last checkpoint, weighted equally; distance in decades."""
    late = held.loc[held["tokens"] == held.groupby("model")["tokens"].transform("max")]
    late = late.drop_duplicates("model", keep="last").copy()
    late["weight"] = 1.0 / len(late)
    late["distance"] = np.log10(late["compute_flops"].to_numpy(float)) - log_c_max
    return late[data.UNIT + ["value", "stderr", "weight", "distance"]].reset_index(drop=True)


@dataclass
class Score:
    """One candidate's nested extrapolation over one or more inner splits."""

    options: dict
    error: float  # mean over the splits of the weighted MAE on their scored units; inf if it failed
    errors: list  # per split: signed (predicted - actual) per scored unit
    reason: str = ""  # why it failed
    residual_se: float = 0.0  # mean residual standard error of the inner fits (inf: no degrees of freedom)
    misfit: float = 0.0  # mean scatter of the inner fits' points beyond their measurement noise


def _score_one(fit_predict, options: dict, split: InnerSplit):
    """(signed errors, weighted MAE, residual se) of one candidate on one split; raises CapcastError."""
    pred = fit_predict(options, split.train, split.test)
    merged = split.scored.merge(pred[data.UNIT + ["predicted"]], on=data.UNIT, how="left")
    e = merged["predicted"].to_numpy(float) - merged["value"].to_numpy(float)
    if not np.isfinite(e).all():
        raise CapcastError("no prediction for some held-out units")
    residual_se = float(pred["residual_se"].iloc[0]) if "residual_se" in pred and len(pred) else 0.0
    misfit = float(pred["misfit"].iloc[0]) if "misfit" in pred and len(pred) else 0.0
    return e, float(np.sum(merged["weight"].to_numpy(float) * np.abs(e))), residual_se, misfit


def score(fit_predict, candidates: list[dict], splits: list[InnerSplit]) -> tuple[list[Score], list[InnerSplit]]:
    """Fit every candidate on each split's ``train`` and score it on its ``scored`` units.

    ``fit_predict(options, train, test) -> DataFrame`` (with model, step, predicted and the inner
    fit's ``residual_se``) fits one candidate.  Splits where the first (default) candidate cannot be
    fitted (CapcastError: too few points there) are dropped for every candidate, so all are
    compared on the same splits; another candidate that fails on a kept split scores inf.
    Returns the scores and the kept splits.
    """
    first, kept = [], []
    for split in splits:
        try:
            first.append(_score_one(fit_predict, candidates[0], split))
            kept.append(split)
        except CapcastError as exc:
            reason = str(exc)
    if not kept:
        return [Score(c, np.inf, [], reason) for c in candidates], []
    out = [_summary(candidates[0], first)]
    for options in candidates[1:]:
        try:
            out.append(_summary(options, [_score_one(fit_predict, options, split) for split in kept]))
        except CapcastError as exc:
            out.append(Score(options, np.inf, [], str(exc)))
    return out, kept


def _summary(options: dict, results: list) -> Score:
    errors, maes, residual_se, misfit = zip(*results)
    return Score(options, float(np.mean(maes)), list(errors), "", float(np.mean(residual_se)), float(np.mean(misfit)))


def noise(splits: list[InnerSplit], scores: list[Score] | None = None) -> float:
    """The noise of a held-out value: the root-mean-square stderr of the scored values where
    known, else the smallest residual standard error of the candidates' inner fits (the scatter
    around the law that fits best: a misspecified law's residuals hold its bias too, and would
    shield it); infinite when no fit has degrees of freedom left, so that nothing is switched on
    evidence that cannot be weighed."""
    se = np.concatenate([s.scored["stderr"].to_numpy(float) for s in splits]) if splits else np.array([])
    se = se[np.isfinite(se)]
    if se.size:
        return float(held_noise(se[None, :])[0])
    if not scores:
        return 0.0
    fitted = [s.residual_se for s in scores if np.isfinite(s.error) and np.isfinite(s.residual_se)]
    return float(min(fitted)) if fitted else float("inf")


def choose(scores: list[Score], splits: list[InnerSplit], margin: float = 1.0) -> Score | None:
    """The first (default) candidate unless another's inner error is lower by more than
    ``margin`` x the noise of the held-out values (:func:`noise`); None if the default could
    not be fitted on any split.

    Inner errors of a few held-out models are noisy: a plain arg-min switches forms on noise
    and, over many tasks, errs more than always keeping the default (docs/laws.md, "Choices").
    Requiring the gain to exceed the benchmark's own noise (the one-standard-error rule of
    model selection) keeps the default unless the held-out rung shows it failing.
    """
    default = scores[0]
    if not np.isfinite(default.error):
        # nothing to compare against: a candidate that merely *can* be fitted on fewer points
        # is no evidence that it extrapolates
        return None
    return scores[int(choose_among([[s.error for s in scores]], [noise(splits, scores)], margin)[0])]


def plausible(scores: list[Score], chosen: Score, splits: list[InnerSplit], margin: float = 1.0) -> list[Score]:
    """The other candidates the inner check cannot rule out: those within ``margin`` x the
    held-out noise of the chosen one's error.  Their disagreement with it beyond the training
    range is uncertainty the data leave open (base.Law widens the interval by it)."""
    at = next(i for i, s in enumerate(scores) if s is chosen)
    keep = plausible_among([[s.error for s in scores]], [at], [noise(splits, scores)], margin)[0]
    return [s for s, k in zip(scores, keep) if k and s is not chosen]


def extra_sd(rate: float, log10_c, log10_c_max: float) -> np.ndarray:
    """The extrapolation sd of units at ``log10_c``: rate x decades beyond the training range."""
    return rate * np.maximum(np.asarray(log10_c, float) - log10_c_max, 0.0)


# ----------------------------------------------------------------------------- array-level rules
# The rules above for many problems at once (the trends stage's curves): one row per problem;
# padded columns carry weight 0 and finite values.  The row-level functions call these, so each
# rule is written once.
def held_noise(stderr: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(P,) root-mean-square stderr of each row's held-out values (where ``mask`` and finite);
    NaN where a row has none."""
    se = np.atleast_2d(np.asarray(stderr, float))
    ok = np.isfinite(se) if mask is None else (np.asarray(mask, bool) & np.isfinite(se))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.sum(np.where(ok, se, 0.0) ** 2, axis=1) / ok.sum(axis=1))


def choose_among(errors, noise, margin: float = 1.0) -> np.ndarray:
    """(P,) index of the chosen candidate in each row of inner errors ``errors`` (P, K; column 0
    the default, inf where a candidate failed): the default unless the best is lower by more than
    ``margin`` x that row's ``noise`` (:func:`choose`); -1 where the default itself failed."""
    errors = np.atleast_2d(np.asarray(errors, float))
    noise = np.broadcast_to(np.asarray(noise, float), errors.shape[:1])
    finite = np.isfinite(errors)
    best = np.argmin(np.where(finite, errors, np.inf), axis=1)
    keep = errors[np.arange(len(errors)), best] >= errors[:, 0] - margin * noise
    return np.where(finite[:, 0], np.where(keep, 0, best), -1)


def plausible_among(errors, chosen, noise, margin: float = 1.0) -> np.ndarray:
    """(P, K) which candidates of each row the inner check cannot rule out (:func:`plausible`):
    finite errors within ``margin`` x the row's noise of the chosen candidate's (index ``chosen``)."""
    errors = np.atleast_2d(np.asarray(errors, float))
    chosen = np.asarray(chosen, int)
    noise = np.broadcast_to(np.asarray(noise, float), errors.shape[:1])
    slack = margin * noise
    return np.isfinite(errors) & (errors <= (errors[np.arange(len(errors)), chosen] + slack)[:, None])


def rates(errors, stderr, weight, distance) -> np.ndarray:
    """(P,) extrapolation rate of each row: an inner error e at distance d (decades beyond the
    inner training range) modelled as e^2 = stderr^2 + (rate d)^2, the held-out value's noise and
    an error that grows with the distance (weighted least squares through the origin in d^2,
    distances at least ``MIN_DISTANCE``): signed errors, stderr (NaN counts as 0),
    weights (0 = padding) and distances in decades beyond the inner training range, each (P, m)."""
    w = np.asarray(weight, float)
    e = np.asarray(errors, float)
    se = np.nan_to_num(np.asarray(stderr, float))
    excess = e**2 - se**2
    d2 = np.maximum(np.asarray(distance, float), MIN_DISTANCE) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):  # a row with no scored units: NaN
        rate2 = np.sum(w * excess * d2, axis=-1) / np.sum(w * d2**2, axis=-1)
    return np.sqrt(np.maximum(rate2, 0.0))
