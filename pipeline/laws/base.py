"""What every law shares: the estimator interface, intervals, the output frame.

Interface (scikit-learn style, see docs/laws.md): parameters in ``__init__``; ``fit(rows)``
takes scores-table rows (any suites, tasks and metrics; each law picks what it needs) and
returns ``self``; fitted state lives in attributes ending in ``_``; ``predict(rows)`` returns
one row per unit to predict with ``predicted``, ``lower``, ``upper`` (a ``level`` prediction
interval) beside the unit's identity, scale and ``actual`` value (empty for a forecast).

A law implements three things and inherits the rest (bootstrap, calibration, noise, output):

* ``_fit(rows) -> units``: the full fit; sets ``state_`` (every parameter array with a leading
  axis of length 1) and returns its training units (model, step, family, params, tokens,
  compute_flops, value, stderr);
* ``_refit(weights) -> state``: the same fit for every row of ``weights(units)`` (bootstrap
  counts, holdout masks), warm-started from ``state_``;
* ``_predict_state(state, units) -> (B, m)``: the metric for each unit under each state row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from pipeline.errors import FitError
from pipeline.laws import data, intervals, nested
from pipeline.laws.data import Metric

WELL_SEEN = 3  # training models of a family for its units to count as seen (interval: the forward holdout's)
OUTPUT = ["model", "step", "family", "params", "tokens", "compute_flops", "actual", "stderr",
          "predicted", "lower", "upper"]


class Law(BaseEstimator):
    """Base class; subclasses set ``method`` and implement ``_fit``, ``_refit``, ``_predict_state``.

    A scikit-learn estimator: ``__init__`` only stores its arguments under their own names, so
    ``sklearn.base.clone``, ``get_params(deep=True)`` and ``set_params`` work on every law.
    """

    method = "law"
    folds = nested.FOLDS  # inner splits the nested choice scores on

    def __init__(self, target, n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        self.target = target
        self.n_bootstrap = n_bootstrap
        self.level = level
        self.random_state = random_state

    @property
    def target_(self) -> Metric:
        return Metric.parse(self.target)

    def _chance(self, rows) -> float:
        """The target's random-guess level: the ``chance`` option if set, else the rows' ``chance``
        column, else the built-in table (:func:`pipeline.scores.chance_level`)."""
        given = getattr(self, "chance", None)
        if given is not None:
            return float(given)
        return self.target_.chance(rows)

    # -- the estimator interface ----------------------------------------------------
    def fit(self, rows: pd.DataFrame):
        """Choose the law's options left at "auto" by nested extrapolation (:meth:`_choose`), then
        fit on all rows."""
        rows = self._row_set(rows)
        self._choose(rows)
        self._fit_final(rows)
        return self

    def _fit_final(self, rows: pd.DataFrame):
        """The fit with the options in ``chosen_`` (or the law's own): state, noise, intervals."""
        if not hasattr(self, "chosen_"):  # fitted without a nested choice (an inner fit)
            self.chosen_, self.form_ = {}, "-"
            self.inner_errors_, self.inner_error_, self.inner_rung_ = {}, float("nan"), "none (not checked)"
        train = self._fit(rows).reset_index(drop=True)
        fitted = self._predict_state(self.state_, train)[0]
        accuracy = self.target_.kind == "accuracy"
        y, se = train["value"].to_numpy(float), train["stderr"].to_numpy(float)
        self.n_items_ = intervals.items_from_stderr(y, se) if accuracy else None
        self.misfit_ = intervals.misfit_sd(y - fitted, se)
        # classical residual standard error (inf without degrees of freedom): the noise the nested
        # choice compares gains against where the rows give no stderr
        dof = len(y) - self._n_params()
        self.residual_se_ = float(np.sqrt(np.sum((y - fitted) ** 2) / dof)) if dof > 0 else float("inf")
        self.n_train_ = len(train)
        self.train_models_ = sorted(train["model"].astype(str).unique())
        self.train_families_ = sorted(train["family"].astype(str).unique())
        self.family_models_ = train.groupby(train["family"].astype(str))["model"].nunique().to_dict()
        self._uncertainty(train, y, fitted)
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "state_"):
            raise FitError(f"{self.method}: predict called before fit")
        units = self._units(rows)
        point = self._predict_state(self.state_, units)[0]
        draws = None if self.boot_ is None else self._predict_state(self.boot_, units)
        # a family the law saw through fewer than WELL_SEEN of its models is as good as new to it:
        # its interval is sized by the leave-one-family-out refits
        seen = units["family"].astype(str).map(self.family_models_).fillna(0).to_numpy() >= WELL_SEEN
        inflation = np.where(seen, self.inflation_, self.family_inflation_)
        return self._output(units, point, draws, inflation, self._extra_columns(units))

    def _row_set(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The training checkpoints the law fits on: its ``rows`` option ("all", each run's
        "final" checkpoint, or the compute-efficient "frontier"; :func:`pipeline.laws.data.row_set`)."""
        how = getattr(self, "rows", "all")
        return rows if how in ("all", "auto") else data.row_set(rows, self.target_, how)

    # -- nested extrapolation --------------------------------------------------------------
    def _candidates(self) -> list[dict]:
        """Option settings to choose among (those of options left at "auto"); [] = nothing to choose."""
        return []

    def _opt(self, name: str):
        """An option's value in this fit: the nested choice where it was "auto", else as given."""
        return getattr(self, "chosen_", {}).get(name, getattr(self, name))

    def _inner_fit_predict(self, options: dict, train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
        law = clone(self).set_params(**options, n_bootstrap=0)
        return law._fit_final(train).predict(test).assign(residual_se=law.residual_se_, misfit=law.misfit_)

    def _n_params(self) -> int:
        """Fitted parameters, for degrees of freedom: every entry of the state (all steps of a law)."""
        state = self.state_ if isinstance(self.state_, dict) else {"": self.state_}
        return int(sum(np.shape(v)[-1] for v in state.values() if np.ndim(v) >= 2))

    def _choose(self, rows: pd.DataFrame) -> None:
        """Where the law has options left at "auto" (:meth:`_candidates`): hold out the top rung(s)
        of the training rows, fit every candidate on the rest, keep the default (first) candidate
        unless another extrapolates there better by more than the held-out values' noise
        (:mod:`pipeline.laws.nested`).  A law's intervals do not rest on this check: one ladder's
        top rung is too little to size them by (:mod:`pipeline.laws.policy` sizes them across
        ladders; :meth:`_uncertainty` on the training rows)."""
        candidates = self._candidates()
        self.chosen_ = dict(candidates[0]) if candidates else {}  # the default where no split is possible
        self.form_ = _label(self.chosen_)
        self.inner_errors_, self.inner_error_ = {}, float("nan")
        self.inner_rung_ = "none (nothing to choose)"
        if not candidates:
            return
        splits = nested.inner_splits(rows, self.target_, self.folds)
        self.inner_rung_ = "; ".join(s.rung for s in splits) or "none (too few sizes or checkpoints to hold one out)"
        if not splits:
            return
        results, splits = nested.score(self._inner_fit_predict, candidates, splits)
        self.inner_errors_ = {_label(r.options): round(r.error, 6) for r in results}
        chosen = nested.choose(results, splits)
        if chosen is None:
            self.inner_rung_ += f"; the default could not be fitted there ({results[0].reason})"
            return
        self.inner_rung_ = "; ".join(s.rung for s in splits)
        self.chosen_ = dict(chosen.options)
        self.form_ = _label(self.chosen_)
        self.inner_error_ = chosen.error

    def form_label(self) -> str:
        """The chosen options (``form_``), and what the final fit changed of them: a link whose
        shape (rise or free ceiling) the training points do not identify is fitted as a line (:func:`pipeline.laws.link.fit_link`)."""
        if not getattr(self, "link_note_", ""):
            return self.form_
        changed = f"{self.link_.why}: {self.link_.form}"
        return changed if self.form_ == "-" else f"{self.form_} ({changed})"

    # -- hooks with defaults ----------------------------------------------------------
    def _units(self, rows):
        return data.targets_to_predict(rows, self.target_)

    def _extra_columns(self, units) -> dict:
        return {}

    # -- intervals ---------------------------------------------------------------------
    def _seed(self, salt: int):
        return [int(self.random_state), salt]

    def _uncertainty(self, train, y, fitted) -> None:
        """Bootstrap refits, then split-conformal factors from refits on held-out parts of the
        training rows (:mod:`pipeline.laws.intervals`): the forward (or later-checkpoint) holdout
        sizes the interval of a family the law has seen, leave-one-family-out refits that of a new
        family.  Each factor is the conformal quantile of the held-out standardised errors over
        the normal quantile: it widens or narrows the bootstrap interval to the coverage held-out
        training rows had."""
        self.boot_, self.inflation_, self.family_inflation_, self.calibration_ = None, 1.0, 1.0, {}
        if not self.n_bootstrap:
            return
        boot = intervals.bootstrap(train["model"], self.n_bootstrap, self._seed(1))
        self.boot_ = self._refit(boot)
        accuracy = self.target_.kind == "accuracy"
        noise = intervals.noise_sd(fitted, self.n_items_, self.misfit_, accuracy) * np.ones(len(train))
        P = self._predict_state(self.boot_, train)
        if np.isfinite(P).mean() < 0.5:
            raise FitError(f"{self.method}: most bootstrap refits of {self.target_} failed; the training rows "
                           f"do not pin the law down (widen --train)")
        scores = intervals.oob_scores(y, P, boot(train), noise)
        hold = intervals.holdouts(train, min(intervals.CALIBRATION_REPLICATES, self.n_bootstrap), self._seed(2))
        if hold is not None:
            Ph = self._predict_state(self._refit(hold), train)
            scores.update(intervals.holdout_scores(y, Ph, hold, hold(train), noise))
        factors = intervals.conformal_factors(scores, self.level)
        self.calibration_ = {k: round(v, 4) for k, v in factors.items()}
        self.inflation_ = factors.get("seen", 1.0)
        # no leave-one-family-out errors (a law that cannot predict a family it has not seen): nothing
        # measured the error of a new family, so its interval is the widest any holdout asks for,
        # and never narrower than the bootstrap's
        self.family_inflation_ = factors.get("family", max([1.0] + [factors[k] for k in ("forward", "later", "oob")
                                                                    if k in factors]))

    def _output(self, units: pd.DataFrame, point, draws, inflation, extra: dict) -> pd.DataFrame:
        accuracy = self.target_.kind == "accuracy"
        noise = intervals.noise_sd(point, self.n_items_, self.misfit_, accuracy)
        bounds = (0.0, 1.0) if accuracy else None
        if bounds:
            point = np.clip(point, *bounds)
        # a unit's draws are keyed by its scale, not its name: renaming models changes nothing
        names = [f"{n:.6g}/{d:.6g}" for n, d in zip(units["params"].to_numpy(float), units["tokens"].to_numpy(float))]
        normals = lambda n: intervals.unit_normals(self._seed(7), names, n)  # noqa: E731
        lower, upper = intervals.interval(point, draws, noise, self.level, normals, bounds, inflation)
        out = units.reindex(columns=data.UNIT + data.SCALE).copy()
        out["actual"] = units["value"].to_numpy(float)
        out["stderr"] = units["stderr"].to_numpy(float)
        out["predicted"], out["lower"], out["upper"] = point, lower, upper
        for k, v in extra.items():
            out[k] = v
        return out.reset_index(drop=True)


def _label(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(options.items())) or "-"


def floor_is_free(rule, y, stderr, chance: float) -> bool:
    """Whether the sigmoid floor is fitted rather than fixed at chance.

    ``rule``: "chance" (fixed), "free" (fitted in [0, chance]) or "auto": fixed at chance unless
    the training accuracies sit significantly below it (median below chance - 2 * median
    stderr), as ARC-Challenge does for small models (its distractors were chosen adversarially),
    where a floor at chance cannot fit the data at all.
    """
    if rule == "chance":
        return False
    if rule == "free":
        return True
    if rule != "auto":
        raise FitError(f"floor must be 'chance', 'free' or 'auto', not {rule!r}")
    se = np.asarray(stderr, float)
    margin = 2 * float(np.nanmedian(se)) if np.isfinite(se).any() else 0.0
    return bool(np.median(np.asarray(y, float)) < chance - margin)


class CurveLaw(Law):
    """A law fitted as one curve x -> y: ``_fit`` sets ``curve_``, ``state_`` and ``_train = (units, x, y)``.

    The bootstrap refit is then the curve's own vectorised refit under the unit weights.
    """

    def _refit(self, weights):
        units, x, y = self._train
        return self.curve_.refit(x, y, self.state_, weights(units))
