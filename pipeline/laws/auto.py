"""The forecast that travels: candidate methods weighted by what other ladders taught, with
intervals calibrated on other ladders' errors (:mod:`pipeline.laws.policy`).

* :class:`Auto` fits every candidate method of the policy on the training rows (no bootstrap:
  its interval is conformal), combines their predictions with the policy's stacking weights for
  the forecast's regime, and puts the policy's conformal interval of the auto forecast around it.
* :class:`Calibrated` wraps one law: the law's own point forecast, the policy's conformal
  interval for that method.

Both need the features of the forecast problem (:func:`pipeline.laws.policy.ladder_features`) and
the candidates' disagreement (:func:`pipeline.laws.conformal.spread`), computed from the cheap
single-step candidates fitted on the same training rows.  The ladder calibration speaks of
extrapolating a ladder up in scale: for a unit of a family with no training rows (a new family)
:class:`Calibrated` keeps the law's own interval, and :class:`Auto` gives none.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from pipeline.errors import CapcastError, FitError
from pipeline.laws import data
from pipeline.laws.base import OUTPUT
from pipeline.laws.carry import CarryForward
from pipeline.laws.data import Metric
from pipeline.laws.policy import AUTO, SPREAD_MEMBERS, Policy, ladder_features

_FITS = data.IdentityCache(512)  # candidate fits shared by every law of a backtest fold on the same rows


def fit_candidate(estimator, rows: pd.DataFrame):
    """``estimator`` fitted on ``rows`` (a clone), or the CapcastError that stopped it; cached per
    rows object and estimator settings, so auto and a calibrated law fit a candidate once."""
    settings = (type(estimator).__name__, repr(sorted(estimator.get_params(deep=False).items())))

    def fit():
        try:
            return clone(estimator).fit(rows)
        except CapcastError as exc:
            return exc

    return _FITS.get((rows,), settings, fit)


def with_tokens(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with a token count (a ladder's runs); the same frame where that is all of them, so
    that the candidates fitted on it are shared with the calibrated laws fitted on the same rows."""
    keep = (rows["tokens"] > 0).to_numpy()
    return rows if keep.all() else rows.loc[keep]


_PREDICTED = data.IdentityCache(1024)  # a fitted candidate's predictions of a rows frame, by identity of both


def predicted(law, rows: pd.DataFrame) -> pd.Series | None:
    """``law``'s predictions of ``rows`` indexed by (model, step), or None where it cannot predict
    them; cached, since auto and every calibrated law of a fold ask for the same ones."""
    def compute():
        try:
            pred = law.predict(rows)
        except CapcastError:
            return None
        return pred.set_index([pred["model"].astype(str), pred["step"]])["predicted"]

    return _PREDICTED.get((law, rows), "", compute)


def predictions(fits: dict, rows: pd.DataFrame, units: pd.DataFrame) -> np.ndarray:
    """(n_units, n_fits) predictions of each fitted candidate (NaN where it failed)."""
    out = np.full((len(units), len(fits)), np.nan)
    index = pd.MultiIndex.from_arrays([units["model"].astype(str), units["step"]])
    for j, law in enumerate(fits.values()):
        if isinstance(law, Exception):
            continue
        pred = predicted(law, rows)
        if pred is not None:
            out[:, j] = pred.reindex(index).to_numpy(float)
    return out


class _Calibrated(BaseEstimator):
    """What :class:`Auto` and :class:`Calibrated` share: the problem's features and the spread members."""

    def _fit_context(self, rows: pd.DataFrame, members) -> None:
        """Features of the problem, and the spread members (``(name, estimator)`` pairs) fitted."""
        target = Metric.parse(self.target)
        self.chance_ = target.chance(rows)
        self.features_ = ladder_features(rows, str(target), self.chance_)
        self.members_ = {name: fit_candidate(est, rows) for name, est in members if name in SPREAD_MEMBERS}
        self.train_families_ = sorted(rows["family"].astype(str).unique())

    def _unit_features(self, rows: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
        """Per unit: its distance beyond the training runs, the ladder's features, the spread."""
        from pipeline.laws import conformal

        f = {k: v for k, v in self.features_.items() if k != "log_c_max"}
        feats = units[data.UNIT].assign(
            distance=np.log10(units["compute_flops"].to_numpy(float)) - self.features_["log_c_max"], **f)
        P = predictions(self.members_, rows, units)
        feats["spread"] = conformal.spread(P, feats["floor"].to_numpy(float))
        return feats

    def _seen(self, units: pd.DataFrame) -> np.ndarray:
        return units["family"].astype(str).isin(self.train_families_).to_numpy()


class Auto(_Calibrated):
    """The policy's weighted forecast of ``target`` and its conformal interval.

    ``estimators``: ``(name, law)`` pairs, one per candidate of ``policy`` (a
    :class:`pipeline.laws.policy.Policy`), as scikit-learn's stacking estimators take theirs;
    ``pipeline.laws.make("auto", ...)`` builds them from the policy's candidate names."""

    method = AUTO

    def __init__(self, target, estimators=(), policy: Policy | None = None, level: float = 0.9,
                 random_state: int = 0):
        self.target, self.estimators, self.policy = target, estimators, policy
        self.level, self.random_state = level, random_state

    def fit(self, rows: pd.DataFrame):
        if self.policy is None:
            raise FitError("auto: no policy; learn one from the ladder table (python -m pipeline ladders)")
        names = [name for name, _ in self.estimators]
        if names != list(self.policy.candidates):
            raise FitError(f"auto: the estimators ({', '.join(names)}) are not the policy's candidates "
                           f"({', '.join(self.policy.candidates)})")
        rows = with_tokens(rows)
        self._fit_context(rows, self.estimators)
        self.fits_ = {name: fit_candidate(est, rows) for name, est in self.estimators}
        failed = {m: str(f) for m, f in self.fits_.items() if isinstance(f, Exception)}
        first = next(iter(failed.values()), "")  # the first failure, in the candidates' order
        if len(failed) == len(self.fits_):
            raise FitError(f"auto: no candidate method could be fitted ({first})")
        if failed and set(self.fits_) - set(failed) <= {CarryForward.method}:
            # no calibration ladder is one where every trend failed (a single compute budget, say): the
            # weights and the interval would be those of carrying a value forward on ladders that rise
            # (a policy of carry alone has no trend to fail: it carries, as it was calibrated to)
            raise FitError(f"auto: of its candidates only {CarryForward.method} could be fitted ({first}); "
                           f"with no trend to extrapolate there is no forecast to weigh: give "
                           f"runs at more compute budgets, or ask for --method {CarryForward.method}")
        self.failed_ = failed
        self.form_, self.inner_error_, self.params_used_ = "-", float("nan"), ""
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        units = data.targets_to_predict(rows, Metric.parse(self.target))
        feats = self._unit_features(rows, units)
        P = predictions(self.fits_, rows, units)
        if CarryForward.method in self.policy.candidates:
            # carrying the top rung's value to a model inside the training runs' compute (a curve's
            # lower points, a smaller model) is no forecast: its weight and interval go to the others
            inside = feats["distance"].to_numpy(float) <= 0
            P[inside, self.policy.candidates.index(CarryForward.method)] = np.nan
        W = self.policy.weights(feats)  # one gate evaluation for the point, the interval and the label
        point = self.policy.combine(feats, P, W)
        lower, upper = self.policy.auto_interval(point, feats, P, W)
        seen = self._seen(units)
        # the label's weights are the point's: a candidate without a prediction hands its weight to
        # the others in equal parts (policy.combine fills it with their mean)
        have = np.isfinite(P)
        spare = np.sum(np.where(have, 0.0, W), axis=1, keepdims=True) / np.maximum(have.sum(axis=1, keepdims=True), 1)
        self.weights_ = self.policy.weights_for(feats, np.where(have, W + spare, 0.0))
        out = units.reindex(columns=data.UNIT + data.SCALE).copy()
        out["actual"], out["stderr"] = units["value"].to_numpy(float), units["stderr"].to_numpy(float)
        # the point the interval is around: inside [floor, 1], as every calibrated forecast
        out["predicted"] = np.where(seen, np.clip(point, feats["floor"].to_numpy(float), 1.0), np.nan)
        out["lower"], out["upper"] = np.where(seen, lower, np.nan), np.where(seen, upper, np.nan)
        return out.reset_index(drop=True)[OUTPUT]

    def form_label(self) -> str:
        """The candidates' weights (the largest first), and those that could not be fitted."""
        weights = getattr(self, "weights_", None)
        text = "-" if weights is None else ", ".join(f"{m} {w:.2f}" for m, w in weights if w >= 0.005)
        return text + (f"; not fitted: {', '.join(sorted(self.failed_))}" if self.failed_ else "")


class Calibrated(_Calibrated):
    """``law``'s point forecast with the policy's conformal interval for the method ``name``;
    ``members``: the ``(name, law)`` pairs whose disagreement is a feature of the interval (give
    the law ``n_bootstrap=0`` where every unit it predicts is of a training family: the bootstrap
    interval is then replaced)."""

    def __init__(self, law, policy: Policy, name: str, members=()):
        self.law, self.policy, self.name, self.members = law, policy, name, members

    @property
    def target(self):
        return self.law.target

    def fit(self, rows: pd.DataFrame):
        fitted = fit_candidate(self.law, rows)
        if isinstance(fitted, Exception):
            raise fitted
        self.law_ = fitted
        self._fit_context(rows, self.members)
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        pred = self.law_.predict(rows)
        units = data.targets_to_predict(rows, Metric.parse(self.target))
        key = pred[data.UNIT].astype({"model": str})
        units = key.merge(units.astype({"model": str}), on=data.UNIT, how="left")
        feats = self._unit_features(rows, units)
        lower, upper = self.policy.interval(self.name, pred["predicted"].to_numpy(float), feats)
        seen = self._seen(units)
        pred["lower"] = np.where(seen, lower, pred["lower"])
        pred["upper"] = np.where(seen, upper, pred["upper"])
        # the point the interval is around: inside [floor, 1] (a line may run below chance)
        floor = feats["floor"].to_numpy(float)
        pred["predicted"] = np.where(seen, np.clip(pred["predicted"].to_numpy(float), floor, 1.0), pred["predicted"])
        return pred

    def __getattr__(self, name):  # the wrapped law's fitted state (form_, params_used_, ...)
        if name.endswith("_") and not name.startswith("__") and "law_" in self.__dict__:
            return getattr(self.__dict__["law_"], name)
        raise AttributeError(name)

    def form_label(self) -> str:
        return self.law_.form_label()
