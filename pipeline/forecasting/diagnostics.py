"""What a two-step forecast rests on, as one tidy frame (reports/two_step_diagnostics.csv).

The two-step law (:mod:`pipeline.laws.two_step`) chains a loss law, step 1: L(N, D) or L(C), with
a link, step 2: accuracy as a function of L.  Researchers who use model ladders read those two fits
first (Bhagia et al. 2024, figures of step 1 and step 2), so the report draws them per forecast,
from the rows written here (the report renders tables; it never fits):

==============  ========================================  =====================================
kind            x                                         y
==============  ========================================  =====================================
loss_points     N of a training checkpoint (the law's N)  its loss (``fitted``: in the step-1 fit,
                                                          or dropped: a run's first tokens)
loss_fit        N along the target's recipe               step 1's loss there
loss_target     the target's N                            step 1's loss at the target
link_points     a training checkpoint's loss              its accuracy (``fitted`` as above)
link_fit        a loss (training range to the target's)   step 2's accuracy there
link_target     step 1's loss at the target               the forecast (step 2 of it)
==============  ========================================  =====================================

Losses are on the scale the law fits them on (``loss_scale``: "log" for a perplexity, whose log
is the mean negative log-likelihood; "as is" for nll, bpb, xent).  ``params``, ``tokens`` and
``compute_flops`` give every point's scale (D of a checkpoint, of the recipe, of the target);
``params_kind`` says which N the law used (non-embedding or total).  The fitted curves are the
law's own point predictions: ``link_target`` is the forecast's ``predicted``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.laws import data
from pipeline.laws.loss import PERPLEXITIES, as_loss

ID_COLUMNS = ["target", "task", "metric", "method"]  # the forecast's (family, suite, shots: forecast.csv)
COLUMNS = ID_COLUMNS + ["loss", "loss_scale", "params_kind", "kind", "x", "y", "fitted", "model", "step", "params",
                        "tokens", "compute_flops"]
KINDS = ("loss_points", "loss_fit", "loss_target", "link_points", "link_fit", "link_target")
GRID = 30  # link_fit points spread over the losses (besides those of the recipe)


def empty() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of :func:`two_step_frame` as one table (empty ones left out)."""
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty()


def two_step_frame(law, rows: pd.DataFrame, units: pd.DataFrame, ids: dict) -> pd.DataFrame:
    """The diagnostics of a fitted two-step ``law`` (anything else: an empty frame).

    ``rows``: the rows it was fitted on; ``units``: the target (first row) and the points along its
    recipe (:func:`pipeline.forecasting.targets.target_units`); ``ids``: the forecast's identity
    (target, task, metric, method; other keys are ignored).
    """
    law = law.__dict__.get("law_", law)  # a calibrated two-step law: the law it wraps (its interval is the policy's)
    if not hasattr(law, "link_") or not hasattr(law, "step1_"):
        return empty()
    step1, loss = law.step1_, law.loss_
    kind = law.param_kind_
    u = law._units(units)
    lhat = law._loss_hat(law.state_, u)[0]
    acc = np.clip(law.link_.predict(law.state_["link"], lhat)[0], 0.0, 1.0)
    n_units = data.param_counts(u, kind)
    parts = [
        _points("loss_points", law, step1._train[0], rows, loss, kind),
        _frame("loss_fit", n_units[1:], lhat[1:], u.iloc[1:]),
        _frame("loss_target", n_units[:1], lhat[:1], u.iloc[:1]),
        _points("link_points", law, law._pairs, rows, loss, kind),
    ]
    train_l = as_loss(loss, law._pairs["value_loss"])
    lo, hi = min(train_l.min(), lhat.min()), max(train_l.max(), lhat.max())
    grid = np.unique(np.r_[np.geomspace(lo, hi, GRID) if lo > 0 else np.linspace(lo, hi, GRID), lhat[1:]])
    parts.append(_frame("link_fit", grid, np.clip(law.link_.predict(law.state_["link"], grid)[0], 0.0, 1.0)))
    parts.append(_frame("link_target", lhat[:1], acc[:1], u.iloc[:1]))
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    scale = "log" if loss.metric.split(",")[0] in PERPLEXITIES else "as is"
    out = out.assign(**{k: ids.get(k) for k in ID_COLUMNS}, loss=str(loss), loss_scale=scale, params_kind=kind)
    return out.reindex(columns=COLUMNS)


def _frame(kind: str, x, y, units: pd.DataFrame | None = None, fitted=True) -> pd.DataFrame:
    out = pd.DataFrame({"kind": kind, "x": np.asarray(x, float), "y": np.asarray(y, float), "fitted": fitted})
    if units is not None:
        for c in ("model", "step", "params", "tokens", "compute_flops"):
            out[c] = units[c].to_numpy()
    return out


def _points(kind: str, law, fitted: pd.DataFrame, rows: pd.DataFrame, loss, params_kind: str) -> pd.DataFrame:
    """The checkpoints of a step: those it fitted, then those of ``rows`` it left out (a run's first
    tokens, :func:`pipeline.laws.data.skip_early`)."""
    if kind == "loss_points":
        every = data.values(rows, loss, law.method)
        x_of = lambda f: data.param_counts(f, params_kind)  # noqa: E731
        y_of = lambda f: as_loss(loss, f["value"])  # noqa: E731
    else:
        every = data.join(data.values(rows, law.target_, law.method), data.values(rows, loss, law.method), "_loss")
        x_of = lambda f: as_loss(loss, f["value_loss"])  # noqa: E731
        y_of = lambda f: f["value"].to_numpy(float)  # noqa: E731
    key = lambda f: list(zip(f["model"], f["step"].fillna(-1)))  # noqa: E731
    left = every[~pd.Series(key(every), index=every.index).isin(set(key(fitted)))]
    left = left[(left["tokens"] > 0) & (left["compute_flops"] > 0)]
    parts = [_frame(kind, x_of(fitted), y_of(fitted), fitted)]
    if len(left):
        parts.append(_frame(kind, x_of(left), y_of(left), left, fitted=False))
    return pd.concat(parts, ignore_index=True)
