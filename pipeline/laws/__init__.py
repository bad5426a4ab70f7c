"""Scaling laws as small estimators: ``fit(rows) -> self``, ``predict(rows) -> DataFrame``.

Methods (``make(name, target=..., **options)``):

* ``two_step`` — loss law L(N, D) chained into a sigmoid link (Bhagia et al. 2024);
* ``observational`` — capabilities from other benchmarks, PCA, sigmoid link (Ruan et al. 2024);
  ``observational_compute`` is the same law predicting from compute via each family's line;
* ``direct`` — accuracy straight from log compute: Krajewski et al. 2025's power law on log
  accuracy or a sigmoid, chosen by nested extrapolation;
* ``loglinear`` — metric linear in log compute; ``sigmoid`` — sigmoid in log compute;
  ``line_final``, ``line_frontier``, ``sigmoid_final``: the same through each run's final
  checkpoint, or through the compute-efficient frontier;
* ``auto`` — the candidates weighted by what other ladders taught (:mod:`pipeline.laws.policy`);
* ``carry`` — the last observed value carried forward (the "no change" baseline);
* ``link`` — step 2 of two-step alone, from each unit's observed loss (a diagnostic);
* ``skills`` — a few latent skills in (N, D) with a per-family shift, read out by every
  benchmark (Polo et al. 2024, "Sloth").

See docs/laws.md for the forms, the fitting choices and the backtest results.
"""
from __future__ import annotations

from pipeline.errors import FitError
from pipeline.laws.baselines import PRESET_NAMES, Direct, LogLinear, SigmoidCompute
from pipeline.laws.auto import Auto, Calibrated
from pipeline.laws.carry import CarryForward
from pipeline.laws.link import Link
from pipeline.laws.loss import LossLaw
from pipeline.laws.observational import Observational
from pipeline.laws.skills import Skills
from pipeline.laws.two_step import TwoStep

METHODS = {
    "two_step": TwoStep,
    "observational": Observational,
    "observational_compute": Observational,
    "direct": Direct,
    "loglinear": LogLinear,
    "sigmoid": SigmoidCompute,
    "link": Link,
    "skills": Skills,
    "carry": CarryForward,
    "line_final": LogLinear,
    "line_frontier": LogLinear,
    "sigmoid_final": SigmoidCompute,
    "auto": Auto,
}
PRESETS = {"observational_compute": {"mode": "compute"},
           **{name: {"rows": rows} for (_, rows), name in PRESET_NAMES.items()}}


LOSS_METHODS = ("two_step", "link")  # methods that go through a loss (the loss option)
AUTO_OPTIONS = ("loss", "level", "random_state", "n_bootstrap")  # what make("auto", ...) takes besides the policy


def options_of(method: str) -> list[str]:
    """The options ``make(method, ...)`` accepts besides ``target`` (and ``policy`` for auto)."""
    import inspect

    if method == "auto":
        return list(AUTO_OPTIONS)
    return [p for p in inspect.signature(METHODS[method].__init__).parameters if p not in ("self", "target")]


def make(method: str, **options):
    """An unfitted law by method name; unknown options raise FitError naming the valid ones.

    ``auto`` takes ``policy`` (:class:`pipeline.laws.policy.Policy`) and ``loss``, and gets one
    candidate law per name of the policy, each with its options (no bootstrap: the interval is the
    policy's)."""
    import inspect

    if method == "auto":
        return _auto(**options)
    if method not in METHODS:
        raise FitError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    cls = METHODS[method]
    options = {**PRESETS.get(method, {}), **options}
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise FitError(f"{method}: unknown option(s) {', '.join(bad)}; valid: {', '.join(valid)}")
    return cls(**options)


__all__ = ["METHODS", "make", "Direct", "TwoStep", "Observational", "LogLinear", "SigmoidCompute", "Link", "LossLaw",
           "Skills", "CarryForward", "Auto", "Calibrated", "calibrated",
           "candidate_laws"]


def candidate_laws(names, target, loss=None) -> list[tuple[str, object]]:
    """``(name, law)`` for each candidate name: its options, the loss where it goes through one,
    no bootstrap (a candidate's interval is the policy's)."""
    return [(name, make(name, target=target, n_bootstrap=0, **({"loss": loss} if name in LOSS_METHODS and loss else {})))
            for name in names]


def _auto(target, policy=None, loss=None, level: float = 0.9, random_state: int = 0, n_bootstrap=None, **rest):
    """Auto over the policy's candidates (``n_bootstrap`` is accepted and unused: every law takes it)."""
    if rest:
        raise FitError(f"auto: unknown option(s) {', '.join(sorted(rest))}; valid: {', '.join(AUTO_OPTIONS)}")
    names = list(policy.candidates) if policy is not None else []
    return Auto(target, candidate_laws(names, target, loss), policy, level, random_state)


def calibrated(method: str, policy, **options):
    """``method`` (without its bootstrap) with the policy's interval for it, its spread members
    fitted beside it (:class:`Calibrated`)."""
    from pipeline.laws.policy import SPREAD_MEMBERS

    law = make(method, **{**options, "n_bootstrap": 0})
    members = candidate_laws([m for m in policy.candidates if m in SPREAD_MEMBERS], options["target"],
                             options.get("loss"))
    return Calibrated(law, policy, method, members)
