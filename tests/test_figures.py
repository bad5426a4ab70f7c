"""Every figure the report draws keeps its text on the canvas, at any number of tasks.

Each figure kind is drawn from small synthetic inputs with 1, 2, 3, 6 and 9 tasks (panels), then
measured by the renderer: every visible Text artist (titles, axis labels, tick labels, legend
entries, the suptitle) must lie inside the figure's bounding box, no two titles may intersect, and
a figure legend may not cover an axes' labels or ticks.  Nothing here is judged by eye.
"""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
from matplotlib.text import Text  # noqa: E402

from pipeline import report, scores  # noqa: E402
from pipeline.report import figures, plotting  # noqa: E402

TASKS = ["arc_easy", "arc_challenge", "piqa", "sciq", "winogrande", "lambada_openai", "hellaswag", "openbookqa",
         "hendrycksTest-high_school_government_and_politics"]
COUNTS = [1, 2, 3, 6, 9]
FAMILIES = ["pythia", "opt", "cerebras-gpt", "my-own-ladder-with-a-long-name", "bloom", "llama-2"]
SUITE = "suite_with_a_rather_long_name"
TARGET = "My-own-ladder recipe at 30B params, 300B tokens (a long target name)"
METHODS = ["two_step", "direct", "loglinear", "sigmoid", "observational_compute"]
SIZES = np.array([7e7, 1.6e8, 4.1e8, 1.0e9, 2.8e9, 6.9e9])


def _acc(task: str, c: np.ndarray, shift: float = 0.0) -> np.ndarray:
    lo = scores.chance(task, "acc")
    return lo + (0.92 - lo) / (1 + np.exp(-(np.log10(c) - 21.0 - shift) * 1.3))


def scores_table(n_tasks: int, families=("pythia", "opt")) -> pd.DataFrame:
    """Final checkpoints of every family, and intermediate ones of the first, on the first n tasks."""
    rows = []
    for k, fam in enumerate(families):
        for n in SIZES * (1 + 0.3 * k):
            for step, frac in ((None, 1.0),) + (((20000, 0.15), (70000, 0.5)) if k == 0 else ()):
                d = 3e11 * frac
                for task in TASKS[:n_tasks]:
                    v = float(_acc(task, np.array([6 * n * d]), 0.2 * k)[0])
                    rows.append({"suite": SUITE, "model": f"{fam}-{n:.2g}", "family": fam, "params": n, "tokens": d,
                                 "compute_flops": 6 * n * d, "step": step, "task": task, "metric": "acc", "value": v,
                                 "stderr": 0.01, "num_fewshot": 0, "source": "test"})
                rows.append({"suite": SUITE, "model": f"{fam}-{n:.2g}", "family": fam, "params": n, "tokens": d,
                             "compute_flops": 6 * n * d, "step": step, "task": "lambada_openai", "metric": "ppl",
                             "value": 2 + 1e4 * (n * d) ** -0.2, "stderr": np.nan, "num_fewshot": 0, "source": "test"})
    df = pd.DataFrame(rows)
    df["step"] = df["step"].astype("Int64")
    return scores.validate(df)


def forecast_inputs(n_tasks: int) -> tuple[report.ReportInput, pd.DataFrame, pd.DataFrame]:
    """(inputs, chosen, held-out rows) of one target with n tasks, every method forecast."""
    fam = "pythia"
    table = scores_table(n_tasks)
    c_t = 6 * 3e10 * 3e11
    fc, cv = [], []
    grid = np.logspace(np.log10(6 * SIZES[0] * 3e11), np.log10(c_t), 12)
    for task in TASKS[:n_tasks]:
        for i, m in enumerate(METHODS[:4]):
            p = float(_acc(task, np.array([c_t]), 0.1 * i)[0])
            fc.append({"target": TARGET, "family": fam, "suite": SUITE, "params": 3e10, "params_non_embedding": np.nan,
                       "tokens": 3e11, "compute_flops": c_t, "task": task, "metric": "acc", "num_fewshot": 0,
                       "method": m, "level": 0.9, "predicted": p, "lower": p - 0.05, "upper": min(p + 0.05, 1)})
            y = _acc(task, grid, 0.1 * i)
            cv.append(pd.DataFrame({"target": TARGET, "family": fam, "suite": SUITE, "task": task, "metric": "acc",
                                    "num_fewshot": 0, "method": m, "compute_flops": grid, "params": grid / 1.8e12,
                                    "tokens": 3e11, "predicted": y, "lower": y - 0.03, "upper": y + 0.03}))
    forecast = pd.DataFrame(fc)
    inp = report.ReportInput(scores=table, forecast=forecast, curves=pd.concat(cv, ignore_index=True),
                             predictions=predictions(n_tasks), backtest=backtest(n_tasks))
    chosen = forecast[forecast["method"] == "two_step"].reset_index(drop=True)
    held = inp.predictions[(inp.predictions["method"] == "two_step") & (inp.predictions["family"] == fam)]
    return inp, chosen, held


def predictions(n_tasks: int) -> pd.DataFrame:
    rows = []
    for task in TASKS[:n_tasks]:
        for fam in ("pythia", "opt"):
            for n in SIZES[-2:]:
                c = 6 * n * 3e11
                actual = float(_acc(task, np.array([c]))[0])
                for i, m in enumerate(METHODS):
                    rows.append({"split": "a_split_with_a_long_name", "fold": "f", "method": m, "task": task,
                                 "metric": "acc", "suite": SUITE, "model": f"{fam}-{n:.2g}", "family": fam, "step": np.nan,
                                 "params": n, "tokens": 3e11, "compute_flops": c, "actual": actual,
                                 "predicted": actual + 0.01 * (i - 2), "lower": actual - 0.06, "upper": actual + 0.05})
    return pd.DataFrame(rows)


def backtest(n: int) -> pd.DataFrame:
    """n splits, each with n tasks and every method (the long ones as the real splits have them)."""
    rows = []
    for s in range(n):
        split = f"split_number_{s}_{'three_families_lofo' if s % 2 else 'pythia_deduped_compute'}"
        for i, m in enumerate(METHODS):
            for task in TASKS[:n] + ["ALL"]:
                rows.append({"split": split, "method": m, "task": task, "metric": "acc", "n": 4,
                             "mae": 1 + i + 0.3 * len(task) % 5, "max_error": 9.0, "coverage": 0.9})
    return pd.DataFrame(rows)


def flagged(n: int) -> tuple[report.ReportInput, pd.DataFrame]:
    table = scores_table(n)
    rows = []
    for task in TASKS[:n]:
        rows.append({"suite": SUITE, "family": "pythia", "task": task, "metric": "acc", "num_fewshot": 0,
                     "x": "compute", "label": "emergent", "x_max": 6 * SIZES[-1] * 3e11,
                     "pred_2x": 0.6, "lo_2x": 0.5, "hi_2x": 0.7, "pred_10x": 0.7, "lo_10x": 0.5, "hi_10x": 0.85,
                     "pred_100x": 0.8, "lo_100x": 0.5, "hi_100x": 0.95})
    return report.ReportInput(scores=table), pd.DataFrame(rows)


def capability(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Suites: 1, 2 or 3 (by n); families: up to 6."""
    n_suites = 1 + (n > 1) + (n > 3)
    fams = FAMILIES[:min(n, 6)]
    cap, off = [], []
    for s in range(n_suites):
        suite = f"{SUITE}_{s}"
        for k, fam in enumerate(fams):
            c = 6 * SIZES * 3e11 * (1 + k)
            for j, x in enumerate(c):
                cap.append({"suite": suite, "family": fam, "model": f"{fam}-{j}", "compute_flops": x,
                            "capability": 3 * np.log10(x) - 66 + 0.2 * k, "in_fit": j > 0})
            off.append({"suite": suite, "family": fam, "reference": fams[0], "tasks": " ".join(TASKS[:n]),
                        "min_compute_flops": c[1], "max_compute_flops": c[-1], "slope": 3.0, "intercept": -66 + 0.2 * k})
    return pd.DataFrame(cap), pd.DataFrame(off)


def draw(kind: str, n: int):
    """The figure of ``kind`` drawn from synthetic inputs with n tasks (or panels)."""
    if kind == "accuracy_vs_compute":
        ov = {"suite": SUITE, "plot_tasks": TASKS[:n], "plot_metric": "acc", "num_fewshot": 0}
        return figures.plot_accuracy_vs_compute(scores_table(n, FAMILIES[:4]), ov, None)
    if kind == "family_curves":
        return figures.plot_family_curves(scores_table(n, FAMILIES[:4]), SUITE, FAMILIES[:4], "acc", 0, None)
    if kind == "family_capability":
        return figures.plot_family_capability(*capability(n), None)
    if kind == "target":
        inp, chosen, held = forecast_inputs(n)
        return figures.plot_target(inp, TARGET, chosen, held, None)
    if kind == "backtest_mae":
        return figures.plot_backtest_mae(backtest(n), None)
    if kind == "heldout":
        inp, _, _ = forecast_inputs(n)
        return figures.plot_heldout(inp, "a_split_with_a_long_name", None)
    if kind == "trend_curves":
        inp, fl = flagged(n)
        return figures.plot_trend_curves(inp, fl, 24, None)
    raise KeyError(kind)


KINDS = ["accuracy_vs_compute", "family_curves", "family_capability", "target", "backtest_mae", "heldout",
         "trend_curves"]


# ------------------------------------------------------------------------------- the measurements
def _tick_labels(fig) -> dict[int, bool]:
    """id(tick label) -> whether the axis draws it (its tick lies inside the view interval)."""
    shown = {}
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = hi - lo
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                inside = loc is not None and lo - 1e-9 * span <= loc <= hi + 1e-9 * span
                for lab in (tick.label1, tick.label2):
                    shown[id(lab)] = inside and tick.get_visible()
    return shown


def text_problems(fig) -> list[str]:
    """Texts outside the canvas, intersecting titles, and figure legends over an axes' decorations."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    ticks = _tick_labels(fig)
    problems = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        if not ticks.get(id(t), True):
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            problems.append(f"outside the canvas: {t.get_text()!r} at {tuple(round(v) for v in e.extents)} "
                            f"(canvas {tuple(round(v) for v in box.extents)})")
    titles = [t for ax in fig.axes if ax.get_visible() for t in (ax.title, ax._left_title, ax._right_title)
              if t.get_visible() and t.get_text().strip()]
    if fig._suptitle is not None and fig._suptitle.get_text().strip():
        titles.append(fig._suptitle)
    ext = [(t.get_text(), t.get_window_extent(renderer)) for t in titles]
    for i in range(len(ext)):
        for j in range(i + 1, len(ext)):
            if ext[i][1].overlaps(ext[j][1]):
                problems.append(f"titles overlap: {ext[i][0]!r} and {ext[j][0]!r}")
    for leg in fig.legends:
        lb = leg.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible() and lb.overlaps(ax.get_tightbbox(renderer)):
                problems.append(f"the figure legend covers the panel {ax.get_title()!r}")
    return problems


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("kind", KINDS)
def test_no_text_is_clipped_or_overlapping(kind, n):
    fig = draw(kind, n)
    try:
        assert text_problems(fig) == []
    finally:
        plotting.plt.close(fig)


def test_the_forecast_band_starts_at_the_familys_largest_run():
    from matplotlib.collections import PolyCollection

    inp, chosen, held = forecast_inputs(2)
    fig = figures.plot_target(inp, TARGET, chosen, held, None)
    largest = 6 * max(SIZES) * 3e11  # the family's largest run in scores_table
    bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands  # one per task: the shown method's
    for band in bands:
        xs = np.concatenate([p.vertices[:, 0] for p in band.get_paths()])
        assert xs.min() >= largest * (1 - 1e-9) and xs.max() == pytest.approx(6 * 3e10 * 3e11)
    plotting.plt.close(fig)
