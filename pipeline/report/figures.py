"""The report's figures: each ``plot_*(..., path)`` draws one PNG (or returns the figure when path is None).

Conventions (pipeline/report/plotting.py): log scale axes with units, the metric on the other axis,
one colour per family and per method (disjoint palettes), the chance level dotted, one legend
per figure below the panels.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.report import plotting
from pipeline.report.inputs import ReportInput
from pipeline.report.page import fmt


def shots_mask(table: pd.DataFrame, shots) -> pd.Series:
    if shots is None or (isinstance(shots, float) and math.isnan(shots)):
        return table["num_fewshot"].isna()
    return table["num_fewshot"] == int(shots)


def has_stderr(rows: pd.DataFrame) -> bool:
    return "stderr" in rows.columns and bool(rows["stderr"].notna().any())


def _errorbar(ax, rows: pd.DataFrame, x: str, **kw):
    """Points with ±1 stderr bars where the rows have a stderr (no bars otherwise)."""
    yerr = rows["stderr"].fillna(0) if has_stderr(rows) else None
    return ax.errorbar(rows[x], rows["value"], yerr=yerr, **kw)


def _save(fig, path: Path | None):
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def plot_accuracy_vs_compute(table: pd.DataFrame, overview: dict, path: Path | None):
    """Data overview: one suite's final checkpoints per task, families in colour, chance dotted."""
    rows = scores.final_checkpoints(table[(table["suite"] == overview["suite"]) & (table["metric"] == overview["plot_metric"])
                                   & shots_mask(table, overview.get("num_fewshot"))])
    tasks = [t for t in overview["plot_tasks"] if t in set(rows["task"])]
    fig, axes = plotting.panel_grid(len(tasks), len(tasks) if len(tasks) <= 3 else math.ceil(len(tasks) / 2), 4, 3.3)
    for ax, task in zip(axes.flat, tasks):
        sub = rows[rows["task"] == task]
        for family, g in sub.groupby("family", sort=True):
            _errorbar(ax, g.sort_values("compute_flops"), "compute_flops", marker="o", ms=4, label=family,
                      color=plotting.family_color(family), capsize=2)
        plotting.chance_line(ax, task, overview["plot_metric"])
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=task, ylabel=plotting.metric_label(overview["plot_metric"]))
    handles = plotting.shared_legend(fig, axes, len(tasks))
    plotting.finish(fig, f"{overview['suite']}: {overview['plot_metric']} at the final checkpoint vs compute "
                         f"({fmt(overview.get('num_fewshot'))}-shot)", handles, title_size=11)
    return _save(fig, path)


def plot_family_capability(cap: pd.DataFrame, offsets: pd.DataFrame, path: Path | None):
    """Capability (PC1) against compute per family, with the shared-slope lines of the offsets fit."""
    suites = list(dict.fromkeys(offsets["suite"]))
    fig, axes = plotting.panel_grid(len(suites), 3, 5.5, 4.2)
    for ax, suite in zip(axes.flat, suites):
        off = offsets[offsets["suite"] == suite]
        c = cap[cap["suite"] == suite]
        for fam in off["family"]:
            g = c[c["family"] == fam].sort_values("compute_flops")
            color = plotting.family_color(fam)
            fit = g["in_fit"].astype(str).str.lower().isin(["true", "1"]) if "in_fit" in g else pd.Series(True, g.index)
            ax.plot(g.loc[fit, "compute_flops"], g.loc[fit, "capability"], "o", ms=5, color=color, label=fam)
            if (~fit).any():
                ax.plot(g.loc[~fit, "compute_flops"], g.loc[~fit, "capability"], "o", ms=5, mfc="none", color=color,
                        label="outside the common compute range (not fitted)")
            o = off[off["family"] == fam].iloc[0]
            xs = np.array([o["min_compute_flops"], o["max_compute_flops"]])
            ax.plot(xs, o["slope"] * np.log10(xs) + o["intercept"], "-", color=color, lw=1.2)
        plotting.scale_axis(ax, "compute_flops")
        ntask = len(str(off["tasks"].iloc[0]).split())
        ax.set(title=f"{suite}: capability vs compute (shared slope)",
               ylabel=f"capability: PC1 of {ntask} task accuracies (z-score units)")
        plotting.dedup_legend(ax, title="family")
    plotting.finish(fig)
    return _save(fig, path)


def plot_family_curves(table: pd.DataFrame, suite: str, families: list[str], metric: str, shots,
                       path: Path | None):
    """Per task: the families' accuracies against compute on the same axes (one harness)."""
    rows = scores.final_checkpoints(table[(table["suite"] == suite) & (table["metric"] == metric)
                                   & shots_mask(table, shots) & table["family"].isin(families)])
    tasks = sorted(rows["task"].unique())
    fig, axes = plotting.panel_grid(len(tasks), 4, 3.9, 3.3)
    for ax, task in zip(axes.flat, tasks):
        sub = rows[rows["task"] == task]
        for fam in families:
            g = sub[sub["family"] == fam].sort_values("compute_flops")
            if len(g):
                _errorbar(ax, g, "compute_flops", marker="o", ms=3.5, capsize=2, lw=1,
                          color=plotting.family_color(fam), label=fam)
        plotting.chance_line(ax, task, metric)
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=task, ylabel=plotting.metric_label(metric))
    handles = plotting.shared_legend(fig, axes, len(tasks))
    plotting.finish(fig, f"{suite}: {metric} vs compute, {', '.join(families)} ({fmt(shots)}-shot)", handles,
                    title_size=11)
    return _save(fig, path)


def _jitter(x: float, i: int, n: int, spread: float = 0.045) -> float:
    """Spread n markers at the same x around it (log axis), so intervals do not overlap."""
    return x * 10 ** (spread * (i - (n - 1) / 2))


def plot_target(inp: ReportInput, target: str, chosen: pd.DataFrame, held: pd.DataFrame | None, path: Path | None):
    """One target, one panel per task: the family's data, each method's fitted curve (the chosen one
    thick, with its interval band), the forecasts at the target with their intervals (diamonds), and
    the same-family held-out points of a backtest with the chosen method's predictions."""
    fc = inp.forecast[(inp.forecast["target"] == target) & inp.forecast["predicted"].notna()]
    first = fc.iloc[0]
    suite, family, metric, shots = first["suite"], first["family"], first["metric"], first["num_fewshot"]
    tasks = list(dict.fromkeys(fc["task"]))
    methods = list(dict.fromkeys(fc["method"]))
    fig, axes = plotting.panel_grid(len(tasks), 4, 4.1, 3.5)
    table = inp.scores
    fam_rows = table[(table["suite"] == suite) & (table["family"] == family) & (table["metric"] == metric)
                     & shots_mask(table, shots) & (table["compute_flops"] > 0)]
    finals = scores.final_checkpoints(fam_rows)
    color = plotting.family_color(family)
    bars = " (±1 stderr)" if has_stderr(finals) else ""
    for ax, task in zip(axes.flat, tasks):
        inter = fam_rows[(fam_rows["task"] == task) & ~fam_rows.index.isin(finals.index)
                         & (fam_rows["compute_flops"] >= finals["compute_flops"].min() / 30)]
        if len(inter):
            ax.plot(inter["compute_flops"], inter["value"], ".", ms=2.5, color=color, alpha=0.25,
                    label=f"{family}: intermediate checkpoints")
        g = finals[finals["task"] == task].sort_values("compute_flops")
        _errorbar(ax, g, "compute_flops", fmt="o", ms=4, capsize=2, color=color,
                  label=f"{family}: final checkpoints{bars}")
        pick = chosen[(chosen["target"] == target) & (chosen["task"] == task)]
        best = pick["method"].iloc[0] if len(pick) else None
        if inp.curves is not None:
            cv = inp.curves[(inp.curves["target"] == target) & (inp.curves["task"] == task)]
            for m in methods:
                c = cv[cv["method"] == m].sort_values("compute_flops")
                if c.empty:
                    continue
                mc = plotting.method_color(m)
                ax.plot(c["compute_flops"], c["predicted"], "-", lw=2.2 if m == best else 1.0, color=mc, label=m)
                if m == best:
                    # the band from the family's largest run on: an interval is a forecast's, and inside the
                    # ladder the runs themselves are drawn (no calibration forecast lies inside a ladder)
                    past = c[c["compute_flops"] >= (g["compute_flops"].max() if len(g) else 0)]
                    ax.fill_between(past["compute_flops"], past["lower"], past["upper"], color=mc, alpha=0.15, lw=0)
        if held is not None and len(held):
            h = held[held["task"] == task]
            if len(h):
                ax.errorbar(h["compute_flops"], h["predicted"],
                            yerr=[(h["predicted"] - h["lower"]).clip(lower=0), (h["upper"] - h["predicted"]).clip(lower=0)],
                            fmt="s", mfc="white", ms=5, capsize=2, color="black", lw=0.8, zorder=5,
                            label="backtest: shown method's prediction of a held-out model")
                ax.plot(h["compute_flops"], h["actual"], "*", ms=10, color="gold", mec="black", mew=0.6, zorder=6,
                        label="backtest: held-out actual")
        t = fc[fc["task"] == task]
        for i, (_, r) in enumerate(t.iterrows()):
            x = _jitter(r["compute_flops"], i, len(t))
            ax.errorbar([x], [r["predicted"]], yerr=[[max(r["predicted"] - r["lower"], 0)], [max(r["upper"] - r["predicted"], 0)]],
                        fmt="D", ms=5 if r["method"] == best else 3.5, capsize=3, color=plotting.method_color(r["method"]),
                        mec="black" if r["method"] == best else None)
        ax.axvline(first["compute_flops"], color="#999", lw=0.8, ls="--")
        plotting.chance_line(ax, task, metric)
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=f"{task}" + (f" — shown: {best}" if best else ""), ylabel=plotting.metric_label(metric))
        ax.title.set_fontsize(9)
    handles = plotting.shared_legend(fig, axes, len(tasks))
    level = fmt(first["level"]) if "level" in first else "0.9"
    plotting.finish(fig, f"{target} — {suite}, {metric}, {fmt(shots)}-shot; diamonds: forecasts at the target "
                         f"compute (dashed) with {level} intervals", handles)
    return _save(fig, path)


def plot_backtest_mae(bt: pd.DataFrame, path: Path | None):
    """Per split: each method's MAE on each task (points), the all-task MAE as a bar."""
    splits = list(dict.fromkeys(bt["split"]))
    fig, axes = plotting.panel_grid(len(splits), 3, 5.2, 3.6)
    for ax, split in zip(axes.flat, splits):
        b = bt[bt["split"] == split]
        methods = list(dict.fromkeys(b["method"]))
        tasks = [t for t in dict.fromkeys(b["task"]) if t != "ALL"]
        for i, m in enumerate(methods):
            bm = b[b["method"] == m]
            allrow = bm[bm["task"] == "ALL"]
            color = plotting.method_color(m)
            if len(allrow):
                ax.bar(i, allrow["mae"].iloc[0], color=color, alpha=0.3, width=0.7)
            per = bm[bm["task"] != "ALL"]
            xs = i + np.linspace(-0.25, 0.25, max(len(tasks), 1))[[tasks.index(t) for t in per["task"]]]
            ax.plot(xs, per["mae"], "o", ms=4, color=color)
        ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
        ax.set(title=split, ylabel="MAE on held-out models (accuracy points)", xlabel="method")
        ax.title.set_fontsize(10)
    plotting.hide_unused(axes, len(splits))
    plotting.finish(fig, "Backtest MAE per split: bars = all tasks, points = one task each")
    return _save(fig, path)


def plot_heldout(inp: ReportInput, split: str, path: Path | None):
    """One split, one panel per task: the held-out actuals (stars, by family) and each method's
    predictions with their intervals (offset by method)."""
    pr = inp.predictions[inp.predictions["split"] == split]
    tasks = list(dict.fromkeys(pr["task"]))
    methods = list(dict.fromkeys(pr["method"]))
    fig, axes = plotting.panel_grid(len(tasks), 4, 4.1, 3.4)
    for ax, task in zip(axes.flat, tasks):
        p = pr[pr["task"] == task]
        metric = str(p["metric"].iloc[0])
        act = p.drop_duplicates(["model", "step"])
        for fam, g in act.groupby("family", sort=True):
            ax.plot(g["compute_flops"], g["actual"], "*", ms=10, color=plotting.family_color(fam), mec="black",
                    mew=0.5, label=f"{fam}: held-out actual")
        for i, m in enumerate(methods):
            pm = p[p["method"] == m]
            if pm.empty:
                continue
            x = np.array([_jitter(v, i, len(methods), 0.03) for v in pm["compute_flops"]])
            ax.errorbar(x, pm["predicted"], yerr=[(pm["predicted"] - pm["lower"]).clip(lower=0),
                                                  (pm["upper"] - pm["predicted"]).clip(lower=0)],
                        fmt="o", ms=3.5, capsize=2, lw=0.9, color=plotting.method_color(m), label=f"{m} prediction")
        plotting.chance_line(ax, task, metric)
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=task, ylabel=plotting.metric_label(metric))
        ax.title.set_fontsize(9)
    handles = plotting.shared_legend(fig, axes, len(tasks))
    plotting.finish(fig, f"Backtest {split}: held-out models, predictions with intervals", handles)
    return _save(fig, path)


def plot_trend_curves(inp: ReportInput, flagged: pd.DataFrame, max_panels: int, path: Path | None):
    """One small panel per flagged curve: its points (final checkpoints, ±1 stderr where published),
    the chance level, and the trends stage's forecasts at the horizons with their intervals."""
    flagged = flagged.head(max_panels)
    n = len(flagged)
    fig, axes = plotting.panel_grid(n, 4, 3.7, 2.9)
    table = inp.scores
    horizons = [c[len("pred_"):] for c in flagged.columns if c.startswith("pred_")]
    for ax, (_, r) in zip(axes.flat, flagged.iterrows()):
        rows = table[(table["suite"] == r["suite"]) & (table["family"] == r["family"]) & (table["task"] == r["task"])
                     & (table["metric"] == r["metric"]) & shots_mask(table, r["num_fewshot"])]
        rows = scores.final_checkpoints(rows)
        xcol = "params" if str(r.get("x", "compute")) == "params" else "compute_flops"
        rows = rows[rows[xcol] > 0].sort_values(xcol)
        _errorbar(ax, rows, xcol, fmt="o-", ms=3.5, lw=0.8, capsize=2, color=plotting.family_color(str(r["family"])),
                  label=str(r["family"]))
        for h in horizons:
            try:
                mult = float(h.rstrip("x"))
            except ValueError:
                continue
            p, lo, hi = r.get(f"pred_{h}"), r.get(f"lo_{h}"), r.get(f"hi_{h}")
            if pd.notna(p) and pd.notna(r["x_max"]):
                ax.errorbar([r["x_max"] * mult], [p], yerr=[[max(p - lo, 0)], [max(hi - p, 0)]], fmt="D", ms=4,
                            capsize=2, color="black", mfc="white", label="forecast (interval)")
        plotting.chance_line(ax, str(r["task"]), str(r["metric"]))
        plotting.scale_axis(ax, xcol)
        ax.set_ylabel(plotting.metric_label(str(r["metric"])), fontsize=7)
        ax.xaxis.label.set_fontsize(7)
        ax.set_title(f"{r['task']} ({r['suite']}, {fmt(r['num_fewshot'])}-shot)\n{r['family']}: {r['label']}", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = plotting.shared_legend(fig, axes, n)
    plotting.finish(fig, "Flagged curves: points = final checkpoints; diamonds = forecasts at "
                    + ", ".join(horizons) + " the largest scale", handles, title_size=9)
    return _save(fig, path)


def loss_label(d: pd.DataFrame) -> str:
    """The loss axis of the two-step diagnostics: which loss, on the scale the law fitted it."""
    first = d.iloc[0]
    task, metric = str(first["loss"]).rsplit(":", 1)
    if first["loss_scale"] == "log":
        return f"{task} loss: ln {metric} (nats)"
    return f"{task} loss: {plotting.metric_label(metric)}"


def plot_two_step(diag: pd.DataFrame, path: Path | None):
    """The two-step forecasts of one target (its rows of two_step_diagnostics.csv), one panel per step:
    step 1, the loss against N with the fitted loss law along the target's recipe and the target's
    predicted loss (star), points coloured by D (one panel: every task's forecast goes through the
    same loss fit; one per distinct fit otherwise); step 2, per task, the accuracy against that loss
    with the fitted link and the target (star), points coloured by N.  Checkpoints the law left out
    (a run's first tokens) are faint grey."""
    first = diag.iloc[0]
    tasks = list(dict.fromkeys(diag["task"]))
    step1 = {}  # distinct step-1 fits: their rows -> the tasks that go through them
    for task in tasks:
        rows = diag[(diag["task"] == task) & diag["kind"].str.startswith("loss_")]
        key = rows[["kind", "x", "y"]].to_csv(index=False)
        step1.setdefault(key, (rows, []))[1].append(task)
    n1 = len(step1)
    fig, axes = plotting.panel_grid(n1 + len(tasks), 4, 3.7, 3.1, min_width=7.5)
    fig.set_layout_engine("constrained")  # colorbars take their room from their panels
    fitted = diag["fitted"].astype(str).str.lower().isin(["true", "1"])
    color = plotting.method_color(str(first["method"]))
    n_kind = "non-embedding parameters" if first["params_kind"] == "non_embedding" else "parameters"
    loss = loss_label(diag)
    panels = [(rows, "loss", f"step 1: loss law ({', '.join(ts)})" if n1 > 1 else "step 1: loss law (every task)")
              for rows, ts in step1.values()]
    panels += [(diag[(diag["task"] == t) & diag["kind"].str.startswith("link_")], "link", f"step 2: {t}")
               for t in tasks]
    scatter = {}
    for ax, (d, step, title) in zip(axes.flat, panels):
        pts, fit = d[d["kind"] == f"{step}_points"], d[d["kind"] == f"{step}_fit"].sort_values("x")
        tgt = d[d["kind"] == f"{step}_target"]
        kept, left = pts[fitted.loc[pts.index]], pts[~fitted.loc[pts.index]]
        shown = pd.concat([kept[["x", "y"]], fit[["x", "y"]], tgt[["x", "y"]]])
        if len(left):
            ax.plot(left["x"], left["y"], ".", ms=3, color="#bbbbbb", label="checkpoints left out of the fit")
        by = "tokens" if step == "loss" else "params"
        scatter.setdefault(step, []).append(
            ax.scatter(kept["x"], kept["y"], c=np.log10(kept[by].astype(float)), cmap="viridis", s=10, zorder=3,
                       label="checkpoints in the fit"))
        ax.plot(fit["x"], fit["y"], "-", lw=1.8, color=color,
                label="fitted loss law along the target's recipe" if step == "loss" else "fitted link")
        ax.plot(tgt["x"], tgt["y"], "*", ms=12, color="gold", mec="black", mew=0.7, zorder=5,
                label="the target: its predicted loss, then the forecast")
        lo, hi = float(shown["y"].min()), float(shown["y"].max())
        pad = 0.08 * (hi - lo) if hi > lo else 0.05
        ax.set_ylim(lo - pad, hi + pad)  # far-off early checkpoints do not squash the fit
        if step == "loss":
            ax.set_xscale("log")
            ax.set_xlim(float(shown["x"].min()) / 1.5, float(shown["x"].max()) * 1.5)
            ax.set(xlabel=f"{n_kind} N (log scale)", ylabel=loss)
        else:
            xlo, xhi = float(shown["x"].min()), float(shown["x"].max())
            ax.set_xlim(xhi + 0.05 * (xhi - xlo), xlo - 0.05 * (xhi - xlo))  # lower loss to the right
            plotting.chance_line(ax, str(d["task"].iloc[0]), str(first["metric"]))
            ax.set(xlabel=f"{loss}, lower to the right", ylabel=plotting.metric_label(str(first["metric"])))
        ax.set_title(title, fontsize=9)
        ax.xaxis.label.set_fontsize(7.5)
        ax.yaxis.label.set_fontsize(7.5)
        ax.tick_params(labelsize=7)
    used = n1 + len(tasks)
    handles = plotting.shared_legend(fig, axes, used)
    for step, label in (("loss", "training tokens D (log10)"), ("link", "parameters N (log10)")):
        if scatter.get(step):
            owners = [sc.axes for sc in scatter[step]]
            cbar = fig.colorbar(scatter[step][0], ax=owners, pad=0.01, shrink=0.9, aspect=30)
            cbar.set_label(label, fontsize=7)
            cbar.ax.tick_params(labelsize=7)
    plotting.finish(fig, f"{first['target']}: the two-step forecasts' fits ({first['metric']}, {first['method']})",
                    handles, title_size=10, legend_cols=3)
    return _save(fig, path)
