"""Every knob of the trends analysis, and its default: params.yaml ``trends:`` over :data:`DEFAULTS`.

:data:`DEFAULTS` holds the values the stage uses where params.yaml says nothing (the committed
params.yaml gives the same ones); :class:`Settings` the grids and decision thresholds of the shape
tests (:mod:`pipeline.trends.shapes`), read from the same section.  The params.yaml schema
(:mod:`pipeline.config`) checks the section against both.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields

DEFAULTS = {
    "x": "compute",
    "min_scales": 4,
    "bootstrap": 200,
    "seed": 0,
    "interval": 0.9,
    "horizons": [2, 10, 100],
    "tau_trend": 6.0,
    "tau_break": 6.0,
    "alpha_gof": 0.01,
    "alpha_chance": 0.05,
    "min_flat_points": 2,
    "z_rise": 3.0,
    "z_turn": 2.0,
    "turn_crit": 3.84,
    "break_f": [0.25],
    "break_min_points": 6,
    "min_stderr": 0.001,
    "refine_rounds": 3,
    "checkpoints": {"min_step": 1000, "min_points": 4, "refine_rounds": 0},
    "emergence": {
        "margin": 0.1,
        "max_decades": 3.0,
        "continuous_metrics": ["prob_correct", "bpb", "nll", "nll_char", "nll_token"],
        "pc_suite": "obsscaling",
        "pc_exclude": ["gsm8k"],
        "n_pcs": 3,
        "min_link_models": 10,
        "bootstrap": 200,
        "report_suites": ["obsscaling_emergent"],
        "backtest_suites": ["obsscaling_emergent", "pythia_evals", "inverse_scaling_pythia"],
        "backtest_min_points": 3,
    },
    "backtest": [],
}


def over_defaults(section: dict) -> dict:
    """A ``trends:`` section of params.yaml over :data:`DEFAULTS` (a mapping updates the default's keys)."""
    cfg = json.loads(json.dumps(DEFAULTS))
    for key, val in section.items():
        if isinstance(val, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(val)
        else:
            cfg[key] = val
    return cfg


@dataclass
class Settings:
    """Grids and decision thresholds (every one of them comes from params.yaml ``trends:``)."""

    tau_trend: float = 6.0  # QBIC(null) − QBIC(best trend form) needed to call a trend
    tau_break: float = 6.0  # QBIC(best monotone) − QBIC(break) needed to call a break in direction
    alpha_gof: float = 0.01  # χ² goodness of fit of the constant below this → noisy, not flat
    alpha_chance: float = 0.05  # points jointly consistent with chance at this level
    min_flat_points: int = 2  # emergent: at least this many smallest scales at chance
    z_rise: float = 3.0  # emergent: the largest point at least this many stderr above chance
    z_turn: float = 2.0  # a turn must move the fit by z_turn·median(stderr)·φ on both sides
    break_f: tuple = (0.25,)  # BNSL sharpness f, decades of scale
    break_min_points: int = 6  # fewer points: the break form is not fitted
    power_c: tuple = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    break_c: tuple = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    sig_w: tuple = (0.03, 0.06, 0.1, 0.17, 0.25, 0.4, 0.6, 1.0)
    sig_t0_step: float = 0.1  # decades
    extrap_decades: float = 3.0  # how far beyond the data crossings / turns are searched
    min_stderr: float = 1e-3  # absolute stderr floor where no item count can be inferred
    refine_rounds: int = 3  # zoom rounds after the grid


def settings_key(cfg: Settings) -> tuple:
    """A hashable key of the settings (their fields are numbers and tuples of numbers)."""
    return tuple(getattr(cfg, f.name) for f in fields(cfg))
