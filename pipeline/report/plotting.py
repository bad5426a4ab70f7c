"""Shared plot conventions: log axes with units, legends by family, chance lines, byte-stable files.

Every stage that draws uses these helpers, so that all plots read the same way: the scale axis
(parameters, tokens or FLOPs) is logarithmic and says so with its unit, the value axis names the
metric and its unit, each family has one colour everywhere, and accuracy plots show the task's
random-guess level as a dotted grey line labelled "chance".
"""
from __future__ import annotations

import io
import math
import re

import matplotlib
import matplotlib.ticker
from PIL import Image

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
DPI = 110  # of every PNG


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


def wrap_text(text, width_px: float, renderer) -> None:
    """Re-break ``text`` (a Text artist) so that every line fits ``width_px`` pixels: at spaces, and
    a name too long for a line of its own after its ``_``, ``-`` or ``/``; explicit breaks stay."""
    def width(s: str) -> float:
        text.set_text(s)
        return text.get_window_extent(renderer).width

    out = []
    for line in text.get_text().split("\n"):
        pieces = []
        for word in line.split(" "):
            pieces += re.split(r"(?<=[_/-])", word) if width(word) > width_px else [word]
            pieces[-1] += " "
        cur = ""
        for piece in pieces:
            if cur.strip() and width((cur + piece).rstrip()) > width_px:
                out.append(cur.rstrip())
                cur = ""
            cur += piece
        out.append(cur.rstrip())
    text.set_text("\n".join(out))


def finish(fig, title: str | None = None, handles: dict | None = None, title_size: float = 10,
           legend_cols: int = 4, legend_title: str | None = None) -> None:
    """Lay a figure out so that no text leaves the canvas, at any number of panels.

    Axes titles are wrapped to their panel's width and ``title`` (the suptitle) to the figure's;
    the figure legend of ``handles`` (label -> handle) goes below the panels in as many columns
    (at most ``legend_cols``) as fit the figure's width; the figure grows by the height of the
    title and the legend, so the panels keep their size; matplotlib's constrained layout then
    places panels, labels, title and legend without overlaps.
    """
    fig.set_dpi(DPI)  # measured at the resolution it is saved at
    renderer = fig.canvas.get_renderer()
    w_in, h_in = fig.get_size_inches()
    dpi = fig.dpi
    gs = next((ax.get_subplotspec().get_gridspec() for ax in fig.axes if ax.get_subplotspec()), None)
    ncol = gs.ncols if gs else 1
    for ax in fig.axes:
        if ax.get_visible() and ax.get_title():
            wrap_text(ax.title, (w_in / ncol - 0.8) * dpi, renderer)  # about the axes' width (less its labels)
    extra = 0.0
    if title:
        sup = fig.suptitle(title, fontsize=title_size)
        wrap_text(sup, (w_in - 0.3) * dpi, renderer)
        extra += sup.get_window_extent(renderer).height / dpi + 0.1
    if handles:
        k = min(legend_cols, len(handles))
        while True:
            leg = fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=k, fontsize=7,
                             frameon=False, title=legend_title, title_fontsize=7)
            width = leg.get_window_extent(renderer).width
            if width <= (w_in - 0.2) * dpi or k == 1:
                break
            leg.remove()
            k -= 1
        extra += leg.get_window_extent(renderer).height / dpi + 0.1
    fig.set_size_inches(w_in, h_in + extra)
    fig.set_layout_engine("constrained", w_pad=0.06, h_pad=0.06, wspace=0.04, hspace=0.04)
    fig.get_layout_engine().execute(fig)
    fig.set_layout_engine(None)  # positions fixed: saving draws once, without laying out twice more


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
    """Write a PNG atomically, byte-identical between runs (no metadata), in 256 colours.

    A plot has a few hundred distinct colours (antialiased edges of a dozen or so), so a palette of
    256 (octree, no dithering) looks the same at a third of the bytes of matplotlib's RGBA file: the
    page embeds every figure.  ``tight=False`` skips the tight bounding box (a second layout pass,
    about half the time of a many-panel figure) for figures already laid out by :func:`finish`.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    plt.close(fig)
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    atomic_write(path, lambda tmp: image.save(tmp, format="png"))


def panel_grid(n: int, max_cols: int, panel_w: float, panel_h: float, min_width: float = 5.5):
    """(fig, axes) with one panel per item: at most ``max_cols`` columns, as many rows as needed; at
    least ``min_width`` inches wide (room for a title and legend above and below one panel).
    :func:`finish` adds the height of the title and the legend."""
    ncol = min(max_cols, max(n, 1))
    nrow = max(math.ceil(n / ncol), 1)
    return plt.subplots(nrow, ncol, figsize=(max(panel_w * ncol, min_width), panel_h * nrow), squeeze=False)


def shared_legend(fig, axes, n_used: int) -> dict:
    """Hide unused panels; the panels' legend entries, each label once (in first-drawn order), for
    :func:`finish` to draw as one legend below the grid."""
    hide_unused(axes, n_used)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_"):
                handles.setdefault(lab, h)
    return handles


def hide_unused(axes, n_used: int) -> None:
    """Hide the panels of a grid beyond the first ``n_used``."""
    for ax in list(axes.flat)[n_used:]:
        ax.set_visible(False)
