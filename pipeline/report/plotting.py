"""Shared plot conventions: log axes with units, legends by family, chance lines, byte-stable files.

Every stage that draws uses these helpers, so that all plots read the same way: the scale axis
(parameters, tokens or FLOPs) is logarithmic and says so with its unit, the value axis names the
metric and its unit, each family has one colour everywhere, and accuracy plots show the task's
random-guess level as a dotted grey line labelled "chance".
"""
from __future__ import annotations

import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pipeline import scores  # noqa: E402
from pipeline.scores import atomic_write  # noqa: E402

FAMILY_COLORS = {
    "pythia": "#1f77b4", "pythia-deduped": "#17becf", "opt": "#d62728", "cerebras-gpt": "#2ca02c",
    "bloom": "#9467bd", "llama-2": "#ff7f0e",
}
METHOD_COLORS = {
    "two_step": "#e377c2", "two-step": "#e377c2", "observational": "#8c564b", "observational_compute": "#c49c94",
    "loglinear": "#7f7f7f", "sigmoid": "#bcbd22", "sigmoid_compute": "#bcbd22", "link": "#7570b3",
}
AXIS_LABELS = {
    "compute_flops": "training compute C (FLOPs, log scale)",
    "params": "parameters N (log scale)",
    "tokens": "training tokens D (log scale)",
}
METRIC_LABELS = {
    "acc": "accuracy (fraction correct)",
    "acc_norm": "length-normalised accuracy (fraction correct)",
    "exact_match": "exact match (fraction)",
    "mc1": "TruthfulQA MC1 (fraction correct)",
    "mc2": "TruthfulQA MC2 (probability mass on true answers)",
    "pass@1": "pass@1 (fraction of problems)",
    "ppl": "perplexity (log scale)",
    "xent": "cross-entropy (nats/token)",
    "nll": "negative log-likelihood (nats)",
    "bpb": "bits per byte",
}
CHANCE_STYLE = dict(ls=":", color="grey", lw=1.2, label="chance")


# Families and methods share figures (a family's data beside the methods' curves), so their colours
# come from disjoint sets: families outside FAMILY_COLORS from tab20 less every method colour,
# methods outside METHOD_COLORS from Dark2 (no colour of tab20, nor of FAMILY_COLORS).
_TAB20 = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
_DARK2 = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("Dark2").colors]
FAMILY_PALETTE = [c for c in _TAB20 if c not in set(METHOD_COLORS.values()) | set(FAMILY_COLORS.values())]
METHOD_PALETTE = [c for c in _DARK2 if c not in set(METHOD_COLORS.values()) | set(FAMILY_COLORS.values())]


def family_color(family: str) -> str:
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    return FAMILY_PALETTE[sum(map(ord, family)) % len(FAMILY_PALETTE)]


def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return METHOD_PALETTE[sum(map(ord, method)) % len(METHOD_PALETTE)]


def metric_label(metric: str) -> str:
    base = metric.split(",")[0]
    return METRIC_LABELS.get(base, metric)


def scale_axis(ax, scale: str = "compute_flops", axis: str = "x") -> None:
    """Log scale and the unit-bearing label of ``scale`` (compute_flops, params or tokens).

    Call after drawing. Over up to 4 decades minor ticks (2..9 x 10^k) are drawn, wider axes get
    none (dozens of unlabelled tick objects per panel dominate drawing time). An axis spanning less
    than 1.2 decades is widened to 1.2 around the data; under 2.5 decades, 1 and 3 x 10^k are both
    labelled, so that every axis has at least two labelled ticks.
    """
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(AXIS_LABELS[scale])
    which = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if not (lo > 0 and hi > 0):
        return
    span = abs(math.log10(hi / lo))
    if span > 4:
        which.set_minor_locator(matplotlib.ticker.NullLocator())
        return
    if span < 1.2:
        mid = math.sqrt(lo * hi)
        (ax.set_xlim if axis == "x" else ax.set_ylim)(mid / 10 ** 0.6, mid * 10 ** 0.6)
    if span < 2.5:
        which.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 3.0)))
        which.set_major_formatter(matplotlib.ticker.LogFormatterSciNotation(labelOnlyBase=False))
    which.set_minor_formatter(matplotlib.ticker.NullFormatter())


def chance_line(ax, task: str, metric: str):
    """Draw the random-guess level of an accuracy metric (nothing for losses or unknown tasks)."""
    if scores.metric_kind(metric) != "accuracy":
        return None
    try:
        level = scores.chance(task, metric)
    except scores.ScoresError:
        return None
    return ax.axhline(level, **CHANCE_STYLE)


def grid_layout(fig, top: float = 0.45, bottom: float = 0.55, left: float = 0.8, right: float = 0.15,
                wspace: float = 0.95, hspace: float = 0.75) -> None:
    """Fixed margins in inches around a grid of panels: as tidy as ``tight_layout`` for the
    report's uniform panels, without its extra measuring pass over every tick label."""
    w, h = fig.get_size_inches()
    gs = fig.axes[0].get_gridspec() if fig.axes and fig.axes[0].get_subplotspec() else None
    nrow, ncol = gs.get_geometry() if gs else (1, 1)
    panel_w = (w - left - right - wspace * (ncol - 1)) / ncol
    panel_h = (h - top - bottom - hspace * (nrow - 1)) / nrow
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace / max(panel_w, 0.1), hspace=hspace / max(panel_h, 0.1))


def dedup_legend(ax, **kwargs) -> None:
    """A legend with each label once (family, method, chance), in first-drawn order."""
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        if lab and not lab.startswith("_") and lab not in seen:
            seen[lab] = h
    if seen:
        ax.legend(list(seen.values()), list(seen), **{"fontsize": 7, **kwargs})


def save(fig, path, tight: bool = True) -> None:
    """Write a PNG atomically, without the metadata that would make bytes differ between runs.

    ``tight=False`` skips the tight bounding box (a second layout pass, about half the time of a
    many-panel figure) for figures already laid out with ``fig.tight_layout()``.
    """
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None},
                                               bbox_inches="tight" if tight else None))
    plt.close(fig)


def panel_grid(n: int, max_cols: int, panel_w: float, panel_h: float, extra_h: float = 0.0):
    """(fig, axes) with one panel per item: at most ``max_cols`` columns, as many rows as needed."""
    ncol = min(max_cols, max(n, 1))
    nrow = max(math.ceil(n / ncol), 1)
    return plt.subplots(nrow, ncol, figsize=(panel_w * ncol, panel_h * nrow + extra_h), squeeze=False)


def shared_legend(fig, axes, n_used: int, ncol: int = 4) -> dict:
    """Hide unused panels and draw one legend below the grid, each label once (in first-drawn order)."""
    hide_unused(axes, n_used)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_"):
                handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(ncol, len(handles)),
                   fontsize=7, frameon=False)
    return handles


def hide_unused(axes, n_used: int) -> None:
    """Hide the panels of a grid beyond the first ``n_used``."""
    for ax in list(axes.flat)[n_used:]:
        ax.set_visible(False)
