"""report stage: what a researcher opens after `dvc repro` (reports/index.html, reports/forecast.md, plots).

The report only *reads* tables other stages wrote (``data/scores.parquet``, ``reports/forecast.csv``,
``reports/backtest*.csv``, ``reports/trends*.csv``, ``reports/family_offsets.csv``, ...) and renders
them twice from the same cells: Markdown (``reports/forecast.md``, images as files under
``reports/plots/``) and one self-contained HTML page (``reports/index.html``: images embedded as
data URIs, inline CSS, no script, no font or network reference).

Every number printed is a cell of the CSV named next to its table, formatted by :func:`fmt`
(3 significant digits), so a test can parse both documents and compare them with the CSVs.
A missing input (a stage not run) gives a note in its section, not a failure.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import math
import multiprocessing as mp
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import params, plotting, scores

DASH = "–"  # printed for an empty cell
# trend labels the report flags (pipeline/trends.py LABELS: positive, emergent, inverse, u_shaped, inverted_u, flat, noisy)
FLAGGED = ("emergent", "inverse", "u_shaped", "inverted_u")


# ------------------------------------------------------------------------------- formatting

def _shared_legend(fig, axes, n_used: int) -> dict:
    """Hide unused panels and draw one legend for the figure (labels de-duplicated across panels)."""
    plotting.hide_unused(axes, n_used)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(handles)), fontsize=7,
               frameon=False)
    return handles

def fmt(x) -> str:
    """The one number format of the report: integers as is, floats to 3 significant digits."""
    if x is None or x is pd.NA:
        return DASH
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if math.isnan(float(x)):
            return DASH
        return f"{float(x):.3g}"  # infinity prints as inf
    return str(x)


def display(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Cells as the report prints them: only ``columns`` that exist, each cell through :func:`fmt`."""
    cols = [c for c in columns if c in df.columns]
    out = pd.DataFrame(index=range(len(df)))
    for c in cols:
        s = df[c]
        if pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[c] = [DASH if pd.isna(v) else str(int(v)) for v in s]
        else:
            out[c] = [fmt(v) if not (isinstance(v, float) and math.isnan(v)) else DASH for v in s.tolist()]
    return out


def read_csv(path: Path) -> pd.DataFrame | None:
    """A report input, or None when the stage that writes it has not run."""
    if not path.exists():
        return None
    return pd.read_csv(path, keep_default_na=True)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------------- the page
@dataclass
class Page:
    """Parallel HTML and Markdown bodies, built block by block from the same content."""

    html: list = field(default_factory=list)  # strings, and _Image placeholders filled after drawing
    md: list[str] = field(default_factory=list)
    toc: list[tuple[int, str, str]] = field(default_factory=list)
    jobs: list = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str) -> None:
        self.toc.append((level, text, anchor))
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.md.append(f'{"#" * level} {text}\n')

    def para(self, text: str, cls: str | None = None) -> None:
        klass = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{klass}>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def bullets(self, items: list[str]) -> None:
        if not items:
            return
        self.html.append("<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>")
        self.md.append("\n".join(f"- {t}" for t in items) + "\n")

    def note(self, text: str) -> None:
        self.para(text, cls="note")

    def table(self, cells: pd.DataFrame, source: str, caption: str | None = None,
              marks: dict[str, str] | None = None) -> None:
        """``cells`` are strings (see :func:`display`); ``source`` names the CSV they came from.

        ``marks``: extra columns (not in the CSV), e.g. ``{"best": "★"}``, already in ``cells``.
        """
        cols = list(cells.columns)
        numeric = {c for c in cols if cells[c].map(_looks_numeric).all() and len(cells)}
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for row in cells.itertuples(index=False):
            tds = "".join(f'<td class="num">{html.escape(v)}</td>' if c in numeric else
                          f'<td class="long">{html.escape(v)}</td>' if len(v) > 40 else f"<td>{html.escape(v)}</td>"
                          for c, v in zip(cols, row))
            body.append(f"<tr>{tds}</tr>")
        cap = f"<caption>{html.escape(caption)} <span class=src>source: {html.escape(source)}</span></caption>" \
            if caption else f"<caption><span class=src>source: {html.escape(source)}</span></caption>"
        self.html.append(f'<div class="tbl"><table data-source="{html.escape(source)}">{cap}'
                         f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
        lines = [f"<!-- table source={source} -->"]
        if caption:
            lines.append(f"*{caption}* (source: `{source}`)\n")
        else:
            lines.append(f"(source: `{source}`)\n")
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join("---:" if c in numeric else "---" for c in cols) + "|")
        for row in cells.itertuples(index=False):
            lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
        self.md.append("\n".join(lines) + "\n")

    def figure(self, path: Path, func, args: tuple, alt: str, caption: str) -> None:
        """A figure drawn by ``func(*args, path)`` (later, see :meth:`draw`), embedded in the HTML as a
        data URI and linked from the Markdown as ``plots/<name>``."""
        self.jobs.append((func, args, path))
        self.html.append(_Image(path, alt, caption))
        self.md.append(f"![{alt}](plots/{path.name})\n\n*{caption}*\n")

    def draw(self, processes: int = 1) -> None:
        """Draw every figure: in ``processes`` forked workers (each figure is independent)."""
        global _JOBS
        _JOBS = self.jobs
        try:
            if processes > 1 and len(self.jobs) > 1 and "fork" in mp.get_all_start_methods():
                with mp.get_context("fork").Pool(min(processes, len(self.jobs))) as pool:
                    pool.map(_draw_job, range(len(self.jobs)), chunksize=1)
            else:
                for i in range(len(self.jobs)):
                    _draw_job(i)
        finally:
            _JOBS = []

    def details(self, summary: str) -> "_Details":
        return _Details(self, summary)

    def render_html(self, title: str) -> str:
        toc = "".join(f'<li class="l{lvl}"><a href="#{a}">{html.escape(t)}</a></li>' for lvl, t, a in self.toc if lvl <= 3)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
                f"<nav><b>Contents</b><ul>{toc}</ul></nav>\n<main>\n" + "\n".join(map(str, self.html))
                + "\n</main>\n</body></html>\n")

    def render_md(self) -> str:
        return "\n".join(self.md)


_JOBS: list = []


def _draw_job(i: int) -> None:
    func, args, path = _JOBS[i]
    func(*args, path)


@dataclass
class _Image:
    path: Path
    alt: str
    caption: str

    def __str__(self) -> str:
        data = base64.b64encode(self.path.read_bytes()).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}">'
                f"<figcaption>{html.escape(self.caption)}</figcaption></figure>")


class _Details:
    def __init__(self, page: Page, summary: str):
        self.page, self.summary = page, summary

    def __enter__(self):
        self.page.html.append(f"<details><summary>{html.escape(self.summary)}</summary>")
        self.page.md.append(f"<details><summary>{self.summary}</summary>\n")
        return self.page

    def __exit__(self, *exc):
        self.page.html.append("</details>")
        self.page.md.append("</details>\n")
        return False


def _looks_numeric(v: str) -> bool:
    if v == DASH:
        return True
    try:
        float(v)
        return True
    except ValueError:
        return False


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;
 line-height:1.45;display:flex;background:#fafafa}
nav{position:sticky;top:0;height:100vh;overflow:auto;width:15rem;flex:none;padding:1rem;background:#f0f0f0;
 font-size:.85rem;box-sizing:border-box}
nav ul{list-style:none;padding-left:0;margin:.4rem 0} nav li.l3{padding-left:1rem} nav a{color:#0b5394;text-decoration:none}
main{padding:1rem 2rem;max-width:75rem;min-width:0}
h1{margin-top:.3rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0 1rem} caption{text-align:left;font-size:.8rem;color:#555;
 padding:.2rem 0} th,td{border:1px solid #d5d5d5;padding:.15rem .45rem;text-align:left}
th{background:#eee} td{white-space:nowrap} td.long{white-space:normal;min-width:26rem;font-size:.76rem}
td.num{text-align:right;font-variant-numeric:tabular-nums} tbody tr:nth-child(even){background:#f4f4f4}
.tbl{overflow-x:auto} .src{font-family:ui-monospace,monospace;color:#777}
figure{margin:1rem 0} img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
figcaption{font-size:.8rem;color:#555} .note{color:#8a6d3b;background:#fcf8e3;padding:.3rem .6rem;border-radius:3px}
.lead{font-size:1.02rem} details{margin:.5rem 0 1rem} summary{cursor:pointer;color:#0b5394}
"""


# ----------------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    scores: pd.DataFrame
    forecast: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    offsets: pd.DataFrame | None = None
    capability: pd.DataFrame | None = None
    backtest: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    trends: pd.DataFrame | None = None
    trends_backtest: pd.DataFrame | None = None
    emergence: pd.DataFrame | None = None
    trends_metrics: dict | None = None
    pred_suites: pd.DataFrame | None = None  # (row, suite) of backtest predictions, see prediction_suites


def load_inputs(scores_path: Path, reports: Path) -> Inputs:
    return Inputs(
        scores=scores.read(scores_path),
        forecast=read_csv(reports / "forecast.csv"),
        curves=read_csv(reports / "forecast_curves.csv"),
        offsets=read_csv(reports / "family_offsets.csv"),
        capability=read_csv(reports / "capability.csv"),
        backtest=read_csv(reports / "backtest.csv"),
        predictions=read_csv(reports / "backtest_predictions.csv"),
        trends=read_csv(reports / "trends.csv"),
        trends_backtest=read_csv(reports / "trends_backtest.csv"),
        emergence=read_csv(reports / "trends_emergence.csv"),
        trends_metrics=read_json(reports / "trends_metrics.json"),
    )


# ------------------------------------------------------------------------------ data helpers
def data_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Rows, models, tasks and checkpoints per (suite, family)."""
    return (table.groupby(["suite", "family"])
            .agg(rows=("value", "size"), models=("model", "nunique"), tasks=("task", "nunique"),
                 checkpoints=("step", "nunique"))
            .reset_index())


def final_checkpoints(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, model, task, metric, shots): the latest step (or the only, stepless, row)."""
    order = table.assign(_step=table["step"].fillna(np.iinfo(np.int64).max).astype("int64"))
    keys = ["suite", "model", "task", "metric", "num_fewshot"]
    idx = order.sort_values("_step", kind="mergesort").groupby(keys, dropna=False)["_step"].idxmax()
    return table.loc[np.sort(idx.to_numpy())]


def _shots(table: pd.DataFrame, shots) -> pd.Series:
    if shots is None or (isinstance(shots, float) and math.isnan(shots)):
        return table["num_fewshot"].isna()
    return table["num_fewshot"] == int(shots)


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-").replace("--", "-")


# ---------------------------------------------------------------------------------- plots
def plot_accuracy_vs_compute(table: pd.DataFrame, cfg: dict, path: Path):
    """Data overview: one suite's final checkpoints per task, families in colour, chance dotted."""
    rows = final_checkpoints(table[(table["suite"] == cfg["suite"]) & (table["metric"] == cfg["plot_metric"])
                                   & _shots(table, cfg["num_fewshot"])])
    tasks = [t for t in cfg["plot_tasks"] if t in set(rows["task"])]
    ncol = max((len(tasks) + 1) // 2, 1)
    fig, axes = plotting.plt.subplots(2, ncol, figsize=(4 * ncol, 7), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        sub = rows[rows["task"] == task]
        for family, g in sub.groupby("family", sort=True):
            g = g.sort_values("compute_flops")
            ax.errorbar(g["compute_flops"], g["value"], yerr=g["stderr"].fillna(0), marker="o", ms=4,
                        label=family, color=plotting.family_color(family), capsize=2)
        plotting.chance_line(ax, task, cfg["plot_metric"])
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=task, ylabel=plotting.metric_label(cfg["plot_metric"]))
        plotting.dedup_legend(ax)
    plotting.hide_unused(axes, len(tasks))
    fig.suptitle(f"{cfg['suite']}: {cfg['plot_metric']} at the final checkpoint vs compute ({cfg['num_fewshot']}-shot)")
    plotting.grid_layout(fig, top=0.6)
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def plot_family_capability(cap: pd.DataFrame, offsets: pd.DataFrame, path: Path | None):
    """Capability (PC1) against compute per family, with the shared-slope lines of the offsets fit."""
    suites = list(dict.fromkeys(offsets["suite"]))
    fig, axes = plotting.plt.subplots(1, len(suites), figsize=(5.5 * len(suites), 4.2), squeeze=False)
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
    plotting.grid_layout(fig, top=0.35, wspace=0.9)
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def plot_family_curves(table: pd.DataFrame, suite: str, families: list[str], metric: str, shots,
                       path: Path | None):
    """Per task: the families' accuracies against compute on the same axes (one harness)."""
    rows = final_checkpoints(table[(table["suite"] == suite) & (table["metric"] == metric)
                                   & _shots(table, shots) & table["family"].isin(families)])
    tasks = sorted(rows["task"].unique())
    ncol = min(4, max(len(tasks), 1))
    nrow = max(math.ceil(len(tasks) / ncol), 1)
    fig, axes = plotting.plt.subplots(nrow, ncol, figsize=(3.9 * ncol, 3.3 * nrow), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        sub = rows[rows["task"] == task]
        for fam in families:
            g = sub[sub["family"] == fam].sort_values("compute_flops")
            if g.empty:
                continue
            ax.errorbar(g["compute_flops"], g["value"], yerr=g["stderr"].fillna(0), marker="o", ms=3.5,
                        capsize=2, lw=1, color=plotting.family_color(fam), label=fam)
        plotting.chance_line(ax, task, metric)
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=task, ylabel=plotting.metric_label(metric))
        plotting.dedup_legend(ax, fontsize=6)
    plotting.hide_unused(axes, len(tasks))
    fig.suptitle(f"{suite}: {metric} vs compute, {', '.join(families)} ({fmt(shots)}-shot)")
    plotting.grid_layout(fig, top=0.6)
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def _jitter(x: float, i: int, n: int, spread: float = 0.045) -> float:
    """Spread n markers at the same x around it (log axis), so intervals do not overlap."""
    return x * 10 ** (spread * (i - (n - 1) / 2))


def plot_target(inp: Inputs, target: str, chosen: pd.DataFrame, held: pd.DataFrame | None, path: Path | None):
    """One target, one panel per task: data (stderr bars), each method's fitted curve (the chosen
    method with its interval band), the forecast at the target with its interval per method, and
    the backtest's held-out points with their predictions."""
    fc = inp.forecast[(inp.forecast["target"] == target) & inp.forecast["predicted"].notna()]
    first = fc.iloc[0]
    suite, family, metric, shots = first["suite"], first["family"], first["metric"], first["num_fewshot"]
    tasks = list(dict.fromkeys(fc["task"]))
    methods = list(dict.fromkeys(fc["method"]))
    ncol = min(4, len(tasks))
    nrow = math.ceil(len(tasks) / ncol)
    fig, axes = plotting.plt.subplots(nrow, ncol, figsize=(4.1 * ncol, 3.5 * nrow + 0.6), squeeze=False)
    table = inp.scores
    fam_rows = table[(table["suite"] == suite) & (table["family"] == family) & (table["metric"] == metric)
                     & _shots(table, shots) & (table["compute_flops"] > 0)]
    finals = final_checkpoints(fam_rows)
    color = plotting.family_color(family)
    for ax, task in zip(axes.flat, tasks):
        inter = fam_rows[(fam_rows["task"] == task) & ~fam_rows.index.isin(finals.index)
                         & (fam_rows["compute_flops"] >= finals["compute_flops"].min() / 30)]
        if len(inter):
            ax.plot(inter["compute_flops"], inter["value"], ".", ms=2.5, color=color, alpha=0.25,
                    label=f"{family}: intermediate checkpoints")
        g = finals[finals["task"] == task].sort_values("compute_flops")
        ax.errorbar(g["compute_flops"], g["value"], yerr=g["stderr"].fillna(0), fmt="o", ms=4, capsize=2,
                    color=color, label=f"{family}: final checkpoints (±1 stderr)")
        pick = chosen[(chosen["target"] == target) & (chosen["task"] == task)]
        best = pick["method"].iloc[0] if len(pick) else None
        if inp.curves is not None:
            cv = inp.curves[(inp.curves["target"] == target) & (inp.curves["task"] == task)]
            for m in methods:
                c = cv[cv["method"] == m].sort_values("compute_flops")
                if c.empty:
                    continue
                mc = plotting.method_color(m)
                ax.plot(c["compute_flops"], c["predicted"], "-", lw=2.0 if m == best else 1.0, color=mc,
                        label=f"{m} fit" + (" (chosen)" if m == best else ""))
                if m == best:
                    ax.fill_between(c["compute_flops"], c["lower"], c["upper"], color=mc, alpha=0.15, lw=0)
        if held is not None and len(held):
            h = held[held["task"] == task]
            if len(h):
                ax.errorbar(h["compute_flops"], h["predicted"],
                            yerr=[h["predicted"] - h["lower"], h["upper"] - h["predicted"]],
                            fmt="s", mfc="white", ms=5, capsize=2, color="black", lw=0.8, zorder=5,
                            label="backtest: prediction for a held-out model")
                ax.plot(h["compute_flops"], h["actual"], "*", ms=10, color="gold", mec="black", mew=0.6, zorder=6,
                        label="backtest: held-out actual")
        t = fc[fc["task"] == task]
        for i, (_, r) in enumerate(t.iterrows()):
            x = _jitter(r["compute_flops"], i, len(t))
            ax.errorbar([x], [r["predicted"]], yerr=[[r["predicted"] - r["lower"]], [r["upper"] - r["predicted"]]],
                        fmt="D", ms=5 if r["method"] == best else 3.5, capsize=3, color=plotting.method_color(r["method"]),
                        mec="black" if r["method"] == best else None)
        ax.axvline(first["compute_flops"], color="#999", lw=0.8, ls="--", label="target compute")
        plotting.chance_line(ax, task, metric)
        plotting.scale_axis(ax, "compute_flops")
        ax.set(title=f"{task}" + (f" — chosen: {best}" if best else ""), ylabel=plotting.metric_label(metric))
        ax.title.set_fontsize(9)
    handles = _shared_legend(fig, axes, len(tasks))
    fig.suptitle(f"{target} — {suite}, {metric}, {fmt(shots)}-shot; diamonds: forecasts with "
                 f"{fmt(first['level']) if 'level' in first else '0.9'} intervals", fontsize=10)
    plotting.grid_layout(fig, top=0.6, bottom=0.6 + 0.2 * math.ceil(len(handles) / 4))
    if path:
        plotting.save(fig, path, tight=False)
    return fig


# ---------------------------------------------------------------------------------- sections
def prediction_suites(inp: Inputs) -> pd.DataFrame:
    """(row, suite) pairs: backtest_predictions.csv rows and the suites they belong to.

    The predictions carry no suite; a row belongs to every suite with a scores row of the same model,
    task and metric (and step, where both have one) whose value equals the prediction's actual (as
    written, to 6 significant digits).
    Two suites can hold the same number (a model card transcribed twice), hence pairs.
    """
    pr = inp.predictions
    if "suite" in pr.columns:
        return pd.DataFrame({"row": range(len(pr)), "suite": pr["suite"].to_numpy()})
    sc = inp.scores[["suite", "model", "step", "task", "metric", "value"]]
    keys = ["model", "task", "metric"]
    left = pr[keys + ["step", "actual"]].assign(row=range(len(pr)))
    left["step"] = pd.to_numeric(left["step"], errors="coerce")
    m = left.merge(sc.assign(step=sc["step"].astype("float64")), on=keys, how="inner", suffixes=("", "_s"))
    same_step = m["step"].isna() | m["step_s"].isna() | (m["step"] == m["step_s"])
    # backtest_predictions.csv holds values to 6 significant digits: compare at that precision, not
    # with a tolerance (two suites can hold the same score to 3 decimals: 0.379 and 0.379003)
    rounded = np.array([float(f"{v:.6g}") for v in m["value"].to_numpy(float)])
    m = m[same_step & (np.isclose(m["actual"], rounded, rtol=1e-12, atol=0) | (m["actual"] == m["value"]))]
    return m[["row", "suite"]].drop_duplicates().reset_index(drop=True)


def in_suite(inp: Inputs, suite: str) -> pd.Series:
    """Whether each backtest prediction belongs to ``suite`` (see :func:`prediction_suites`)."""
    if inp.pred_suites is None:
        inp.pred_suites = prediction_suites(inp)
    rows = set(inp.pred_suites.loc[inp.pred_suites["suite"] == suite, "row"])
    return pd.Series([i in rows for i in range(len(inp.predictions))], index=inp.predictions.index)


EVIDENCE = ("backtest: this family in this suite", "backtest: this suite, other families",
            "backtest: this family, another suite")


def evidence_splits(inp: Inputs, family: str, suite: str, candidates: list[str]) -> tuple[list[str], str]:
    """The backtest splits a method choice rests on, and on what basis.

    In order of preference: splits holding out models of ``family`` in ``suite``; else splits with
    held-out models in ``suite`` (same harness and prompts, other families); else splits holding out
    ``family`` in another suite.  Among the splits of the first basis that has any, those testing the
    most of the ``candidates`` (at least two), so that methods are compared on the same held-out models.
    """
    bt, pr = inp.backtest, inp.predictions
    if bt is None or pr is None or "family" not in pr.columns:
        return [], ""
    own, here = pr["family"] == family, in_suite(inp, suite)
    for basis, mask in zip(EVIDENCE, (own & here, here, own)):
        splits = list(dict.fromkeys(pr.loc[mask, "split"]))
        tested = {s: set(bt.loc[bt["split"] == s, "method"]) & set(candidates) for s in splits}
        most = max((len(v) for v in tested.values()), default=0)
        if most >= 2:
            return [s for s in splits if len(tested[s]) == most], basis
    return [], ""


def choose_methods(inp: Inputs, cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per target and task, the method the report recommends, and the backtest rows behind it.

    Rule: among the target's methods with a forecast, the lowest mean backtest MAE on this task over
    the splits of :func:`evidence_splits` (this family in this suite, else this suite, else this
    family); only methods backtested on all of those splits compete.  Without any: ``report.default_method``.
    """
    fc = inp.forecast[inp.forecast["predicted"].notna()]
    bt = inp.backtest
    chosen, evidence = [], []
    for (target, task), g in fc.groupby(["target", "task"], sort=False):
        first = g.iloc[0]
        methods = list(g["method"])
        pick, rule = None, "default (no backtest)"
        splits, basis = evidence_splits(inp, first["family"], first["suite"], methods)
        if splits:
            ev = bt[bt["split"].isin(splits) & (bt["task"] == task) & bt["method"].isin(methods) & bt["mae"].notna()]
            if "metric" in bt.columns:
                ev = ev[ev["metric"] == first["metric"]]
            full = [m for m in methods if set(ev.loc[ev["method"] == m, "split"]) == set(splits)]
            if full:
                means = ev[ev["method"].isin(full)].groupby("method")["mae"].mean()
                pick = min(full, key=lambda m: (means[m], methods.index(m)))
                rule = basis
                order = {sp: i for i, sp in enumerate(dict.fromkeys(bt["split"]))}
                ev = ev.assign(_o=ev["split"].map(order)).sort_values(["_o", "method"], kind="mergesort").drop(columns="_o")
                evidence.append(ev.assign(target=target, chosen=np.where(ev["method"] == pick, "★", "")))
        if pick is None:
            default = cfg.get("default_method", methods[0])
            pick = default if default in methods else methods[0]
        chosen.append(g[g["method"] == pick].assign(rule=rule))
    ch = pd.concat(chosen, ignore_index=True) if chosen else fc.iloc[:0].assign(rule="")
    ev = pd.concat(evidence, ignore_index=True) if evidence else pd.DataFrame(columns=["target", "split", "task", "method"])
    return ch, ev


def section_targets(page: Page, inp: Inputs, chosen: pd.DataFrame, evidence: pd.DataFrame,
                    plots: Path) -> None:
    page.heading(2, "Forecasts at the target sizes", "targets")
    if inp.forecast is None:
        page.note("reports/forecast.csv is missing: run the forecast stage (dvc repro).")
        return
    fc = inp.forecast
    level = fmt(fc["level"].iloc[0]) if "level" in fc.columns else "0.9"
    page.para(f"Targets come from params.yaml (forecast.targets). Every law is fitted on all checkpoints of the "
              f"target's family in its suite and extrapolated to the target's N, D and C = 6ND; lower and upper "
              f"bound a {level} prediction interval (bootstrap over training models plus benchmark noise). "
              f"'method' is the one the backtests favour for that task: the lowest mean backtest MAE over the splits "
              f"that hold out this family in this suite, else other families in this suite (same harness), else this "
              f"family in another suite ('chosen by'; ★ in the evidence tables; see 'Method comparison'). Every "
              f"method's forecast is in the full table.")
    overview = fc.drop_duplicates("target")
    page.table(display(overview, ["target", "family", "suite", "params", "params_non_embedding", "tokens",
                                  "compute_flops"]),
               "forecast.csv", "Targets: params and tokens as set in params.yaml; compute_flops = 6 x params x tokens; "
               "params_non_embedding extrapolated from the family's published counts where it has them")
    for target in overview["target"]:
        anchor = "target-" + slug(target)
        page.heading(3, target, anchor)
        ch = chosen[chosen["target"] == target]
        cells = display(ch, ["task", "metric", "method", "predicted", "lower", "upper"])
        cells["chosen by"] = ch["rule"].to_numpy()
        page.table(cells, "forecast.csv",
                   f"Predicted {ch['metric'].iloc[0] if len(ch) else ''} with its {level} interval, by the chosen method")
        path = plots / f"target-{slug(target)}.png"
        ev = evidence[evidence["target"] == target] if len(evidence) else evidence
        held, split = heldout_for(inp, ch, ev)
        page.figure(path, plot_target, (inp, target, ch, held), f"forecast curves for {target}",
                    "Per task: the family's data (final checkpoints with ±1 stderr bars; faint dots: intermediate "
                    "checkpoints), each method's fitted curve (thick, with its interval band: the chosen method) and "
                    "the forecasts at the target compute (diamonds with intervals)"
                    + (f"; held-out models of backtest split {split} (stars) with the chosen method's predictions "
                       f"from that split (open squares)." if split else
                       "; no backtest split holds out this family in this suite, so no held-out points are drawn."))
        with page.details(f"All methods for {target}"):
            sub = fc[fc["target"] == target]
            page.table(display(sub, ["task", "method", "predicted", "lower", "upper"]), "forecast.csv")
            if len(ev):
                cells = display(ev, ["split", "task", "metric", "method", "n", "mae", "max_error", "coverage"])
                cells["chosen"] = ev["chosen"].to_numpy()
                page.table(cells, "backtest.csv", "Backtest rows behind the choice: MAE and max error in points "
                           "(x100), ★ = the lowest mean MAE over these splits")
            skipped = sub[sub["predicted"].isna()]
            for _, r in skipped.iterrows():
                page.note(f"{r['task']} / {r['method']}: not forecast ({r.get('note', '')})")


def heldout_for(inp: Inputs, chosen: pd.DataFrame, evidence: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    """Held-out predictions of the chosen method on this target's family *in its suite* (other
    suites are other harnesses: their numbers are not on the plot's axes), from the first
    evidence split; (rows, split name)."""
    pr = inp.predictions
    if pr is None or chosen.empty or not len(evidence):
        return None, ""
    first = chosen.iloc[0]
    split = evidence["split"].iloc[0]
    sel = pr[(pr["split"] == split) & (pr["family"] == first["family"]) & in_suite(inp, first["suite"])]
    out = [sel[(sel["task"] == c["task"]) & (sel["metric"] == c["metric"]) & (sel["method"] == c["method"])]
           for _, c in chosen.iterrows()]
    held = pd.concat(out, ignore_index=True)
    return (held, split) if len(held) else (None, "")


DVC_COLUMNS = ["task", "suite", "family", "model", "metric", "num_fewshot", "params", "tokens", "compute_flops",
               "value", "stderr", "chance"]


def _chance_or_nan(task: str, metric: str) -> float:
    try:
        return scores.chance(task, metric)
    except scores.ScoresError:
        return float("nan")


def dvc_curves(table: pd.DataFrame, configs: list[dict]) -> pd.DataFrame:
    """reports/plots/curves.csv for `dvc plots show`: the family-comparison curves (final checkpoints),
    one row per model and task, with the task's chance level."""
    parts = []
    for c in configs:
        rows = final_checkpoints(table[(table["suite"] == c["suite"]) & (table["metric"] == c.get("metric", "acc"))
                                       & _shots(table, c.get("num_fewshot", 0))
                                       & table["family"].isin(list(c["families"]))])
        parts.append(rows.assign(chance=[_chance_or_nan(t, m) for t, m in zip(rows["task"], rows["metric"])]))
    if not parts:
        return pd.DataFrame(columns=DVC_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["task", "family", "compute_flops", "model"], kind="mergesort")[DVC_COLUMNS]


def dvc_capability(cap: pd.DataFrame) -> pd.DataFrame:
    """reports/plots/capability.csv for `dvc plots show`: capability per model, one panel per suite."""
    out = cap.assign(task="capability (PC1), " + cap["suite"].astype(str), metric="capability", num_fewshot=np.nan,
                     value=cap["capability"], stderr=np.nan, chance=np.nan)
    return out[DVC_COLUMNS]


def offset_sentence(r) -> str:
    """'opt reaches pythia's capability at 0.494x the compute (90% interval 0.255-0.957; ...)'."""
    return (f"{r['family']} reaches {r['reference']}'s capability at {fmt(r['k'])}× the compute "
            f"({fmt(r['level'])} interval {fmt(r['k_lower'])} to {fmt(r['k_upper'])}; suite {r['suite']}, {fmt(r['models'])} models).")


def section_family(page: Page, inp: Inputs, cfg: dict, plots: Path) -> None:
    page.heading(2, "Family comparison", "families")
    off, cap = inp.offsets, inp.capability
    if off is None or off.empty or cap is None:
        page.note("reports/family_offsets.csv is missing or empty: run the forecast stage (forecast.family_comparison).")
        return
    page.para("Observational view (after Ruan et al. 2024): each model's capability is the first principal component "
              "of its suite's benchmark accuracies (tasks standardised; final checkpoints; models with every task), "
              "regressed on log10 training compute with one slope shared by the families and one intercept per "
              "family. Family X then reaches the reference family's capability at k = 10^((b_ref - b_X) / slope) "
              "times the compute: k < 1 means X is more compute-efficient. Intervals: delta method on the OLS "
              "covariance, t quantile, at the forecast level. Implemented in pipeline/forecast.py "
              "(capability_scores, shared_slope_fit), on the suites where several families share one harness.")
    page.bullets([offset_sentence(r) for _, r in off.iterrows() if r["family"] != r["reference"]])
    page.table(display(off, ["suite", "family", "reference", "models", "min_compute_flops", "max_compute_flops",
                             "slope", "own_slope", "intercept", "log10_k", "k", "level", "k_lower", "k_upper", "r2"]),
               "family_offsets.csv",
               "Shared-slope fit per suite: slope in capability units per decade of FLOPs; own_slope: the family "
               "fitted alone (a check on sharing one slope); models: those in the compute range all families cover")
    for suite, g in off.groupby("suite", sort=False):
        page.para(f"{suite}: tasks in the capability score: {g['tasks'].iloc[0]}.")
    path = plots / "family_capability.png"
    page.figure(path, plot_family_capability, (cap, off), "capability vs compute per family",
               "Capability score against training compute (log scale): points are models, lines the shared-slope fit.")
    write_csv(dvc_capability(cap), plots / "capability.csv")
    write_csv(dvc_curves(inp.scores, cfg.get("family_curves") or []), plots / "curves.csv")
    for i, c in enumerate(cfg.get("family_curves") or []):
        path = plots / f"family_curves_{slug(c['suite'])}.png"
        page.figure(path, plot_family_curves,
                    (inp.scores, c["suite"], list(c["families"]), c.get("metric", "acc"), c.get("num_fewshot", 0)),
                    f"scaling curves of {', '.join(c['families'])} on {c['suite']}",
                   f"Scaling curves of {', '.join(c['families'])} on the same axes ({c['suite']}, one harness): "
                   f"{c.get('metric', 'acc')} per task against training compute, ±1 stderr bars, chance dotted.")


def section_data(page: Page, inp: Inputs, summary: pd.DataFrame, cfg: dict, plots: Path) -> None:
    page.heading(2, "Data", "data")
    page.para(f"data/scores.parquet: {len(inp.scores)} rows, {inp.scores['model'].nunique()} models, "
              f"{inp.scores['task'].nunique()} tasks. Numbers are comparable only within a suite.")
    page.table(display(summary, ["suite", "family", "rows", "models", "tasks", "checkpoints"]), "data_summary.csv",
               "Rows, models, tasks and checkpoints per suite and family")
    path = plots / "accuracy_vs_compute.png"
    page.figure(path, plot_accuracy_vs_compute, (inp.scores, cfg), "accuracy vs compute",
               f"{cfg['suite']}: {cfg['plot_metric']} at the final checkpoint per task and family, ±1 stderr bars, chance dotted.")


def best_marks(df: pd.DataFrame, by: list[str], value: str = "mae") -> np.ndarray:
    """'★' on the row with the lowest ``value`` within each ``by`` group (first on ties)."""
    marks = np.array([""] * len(df), dtype=object)
    ok = df[value].notna()
    if ok.any():
        idx = df[ok].reset_index(drop=True).groupby(by, dropna=False, sort=False)[value].idxmin()
        pos = np.flatnonzero(ok.to_numpy())[idx.to_numpy()]
        marks[pos] = "★"
    return marks


def plot_backtest_mae(bt: pd.DataFrame, path: Path | None):
    """Per split: each method's MAE on each task (points), the all-task MAE as a bar."""
    splits = list(dict.fromkeys(bt["split"]))
    ncol = min(3, len(splits))
    nrow = math.ceil(len(splits) / ncol)
    fig, axes = plotting.plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.6 * nrow + 0.5), squeeze=False)
    for ax, split in zip(axes.flat, splits):
        b = bt[bt["split"] == split]
        methods = list(dict.fromkeys(b["method"]))
        tasks = [t for t in dict.fromkeys(b["task"]) if t != "ALL"]
        for i, m in enumerate(methods):
            bm = b[b["method"] == m]
            allrow = bm[bm["task"] == "ALL"]
            color = plotting.method_color(m)
            if len(allrow):
                ax.bar(i, allrow["mae"].iloc[0], color=color, alpha=0.3, width=0.7, label=f"{m}: all tasks")
            per = bm[bm["task"] != "ALL"]
            xs = i + np.linspace(-0.25, 0.25, max(len(tasks), 1))[[tasks.index(t) for t in per["task"]]]
            ax.plot(xs, per["mae"], "o", ms=4, color=color, label=f"{m}: per task")
        ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
        ax.set(title=split, ylabel="MAE on held-out models (accuracy points)", xlabel="method")
        ax.title.set_fontsize(10)
    plotting.hide_unused(axes, len(splits))
    fig.suptitle("Backtest MAE per split: bars = all tasks, points = one task each", fontsize=10)
    plotting.grid_layout(fig, top=0.55, bottom=0.8, hspace=1.0)
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def plot_heldout(inp: Inputs, split: str, path: Path | None):
    """One split, one panel per task: every training model's final score (small dots), the held-out
    actuals (stars) and each method's predictions with their intervals (offset by method)."""
    pr = inp.predictions[inp.predictions["split"] == split]
    tasks = list(dict.fromkeys(pr["task"]))
    methods = list(dict.fromkeys(pr["method"]))
    ncol = min(4, len(tasks))
    nrow = math.ceil(len(tasks) / ncol)
    fig, axes = plotting.plt.subplots(nrow, ncol, figsize=(4.1 * ncol, 3.4 * nrow + 0.7), squeeze=False)
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
    handles = _shared_legend(fig, axes, len(tasks))
    fig.suptitle(f"Backtest {split}: held-out models, predictions with intervals", fontsize=10)
    plotting.grid_layout(fig, top=0.55, bottom=0.6 + 0.2 * math.ceil(len(handles) / 4))
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def section_methods(page: Page, inp: Inputs, cfg: dict, splits_cfg: dict, plots: Path) -> None:
    page.heading(2, "Method comparison (backtests)", "methods")
    bt = inp.backtest
    if bt is None:
        page.note("reports/backtest.csv is missing: run the backtest stage (dvc repro).")
        return
    page.para("Each split fits every method on smaller (or earlier, or other-family) models and predicts held-out "
              "ones declared in advance (params.yaml backtest.splits). MAE and max error are in accuracy points "
              "(x100) over the held-out models; coverage is the share of held-out values inside the prediction "
              "interval; spearman ranks predicted against actual; noise is the held-out values' own noise floor. "
              "★ marks the lowest MAE per split (summary) or per split and task (details). The same numbers are "
              "in reports/metrics.json for dvc metrics show / dvc metrics diff.")
    page.bullets([f"{name}: {sp.get('description', '')}" for name, sp in splits_cfg.items()
                  if name in set(bt["split"])])
    allrows = bt[bt["task"] == "ALL"].reset_index(drop=True)
    cells = display(allrows, ["split", "task", "method", "n", "mae", "max_error", "coverage", "spearman", "noise"])
    cells["best"] = best_marks(allrows, ["split"])
    page.table(cells, "backtest.csv", "All tasks of each split (task = ALL)")
    path = plots / "backtest_mae.png"
    page.figure(path, plot_backtest_mae, (bt,), "backtest MAE per split and method",
               "Backtest MAE per split and method: bars over all tasks, points one per task.")
    per = bt[bt["task"] != "ALL"].reset_index(drop=True)
    for split in dict.fromkeys(per["split"]):
        sub = per[per["split"] == split].sort_values(["task", "method"], kind="mergesort").reset_index(drop=True)
        with page.details(f"{split}: per task"):
            cells = display(sub, ["split", "task", "metric", "method", "n", "mae", "max_error", "coverage", "spearman"])
            cells["best"] = best_marks(sub, ["task", "metric"])
            page.table(cells, "backtest.csv", f"{split}: per task")
    if inp.predictions is not None:
        for split in cfg.get("heldout_splits") or []:
            if split not in set(inp.predictions["split"]):
                continue
            path = plots / f"heldout-{slug(split)}.png"
            page.figure(path, plot_heldout, (inp, split), f"held-out predictions of {split}",
                       f"Backtest {split}, per task: held-out actuals (stars, by family) and every method's "
                       f"prediction with its interval (dots with bars, offset by method).")


TREND_KEY = ["suite", "family", "task", "metric", "num_fewshot"]


def trend_label_counts(trends: pd.DataFrame) -> pd.DataFrame:
    """Curves per label (reports/trends_labels.csv)."""
    c = trends["label"].fillna("").value_counts()
    return pd.DataFrame({"label": c.index.astype(str), "curves": c.to_numpy().astype(int)})


def plot_trend_curves(inp: Inputs, flagged: pd.DataFrame, max_panels: int, path: Path | None):
    """One small panel per flagged curve: its points (final checkpoints, ±1 stderr), the chance level,
    and the trends stage's forecasts at the horizons with their intervals."""
    flagged = flagged.head(max_panels)
    n = len(flagged)
    ncol = min(4, max(n, 1))
    nrow = max(math.ceil(n / ncol), 1)
    fig, axes = plotting.plt.subplots(nrow, ncol, figsize=(3.7 * ncol, 2.9 * nrow + 0.6), squeeze=False)
    table = inp.scores
    horizons = [c[len("pred_"):] for c in flagged.columns if c.startswith("pred_")]
    for ax, (_, r) in zip(axes.flat, flagged.iterrows()):
        rows = table[(table["suite"] == r["suite"]) & (table["family"] == r["family"]) & (table["task"] == r["task"])
                     & (table["metric"] == r["metric"]) & _shots(table, r["num_fewshot"])]
        rows = final_checkpoints(rows)
        xcol = "params" if str(r.get("x", "compute")) == "params" else "compute_flops"
        rows = rows[rows[xcol] > 0].sort_values(xcol)
        color = plotting.family_color(str(r["family"]))
        ax.errorbar(rows[xcol], rows["value"], yerr=rows["stderr"].fillna(0), fmt="o-", ms=3.5, lw=0.8, capsize=2,
                    color=color, label=str(r["family"]))
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
        plotting.dedup_legend(ax, fontsize=6)
    plotting.hide_unused(axes, n)
    fig.suptitle("Flagged curves: points = final checkpoints (±1 stderr); diamonds = forecasts at "
                 + ", ".join(horizons) + " the largest scale", fontsize=9)
    plotting.grid_layout(fig, top=0.95, bottom=0.5, left=0.7, wspace=0.75, hspace=0.85)
    if path:
        plotting.save(fig, path, tight=False)
    return fig


def section_trends(page: Page, inp: Inputs, cfg: dict, trends_cfg: dict, out: Path, plots: Path) -> None:
    page.heading(2, "Emergence and inverse scaling", "trends")
    tr = inp.trends
    if tr is None:
        page.note("reports/trends.csv is missing: run the trends stage (dvc repro).")
        return
    counts = trend_label_counts(tr)
    write_csv(counts, out / "trends_labels.csv")
    horizons = [c[len("pred_"):] for c in tr.columns if c.startswith("pred_")]
    page.para("Every (suite, family, task, metric, shots) curve over the family's final checkpoints gets one shape "
              "label from the trends stage (pipeline/trends.py): positive, emergent (at chance at the smallest scales, "
              "then a significant rise), inverse (worse with scale), u_shaped, inverted_u, flat or noisy; curves "
              "with fewer than 4 scales or without standard errors are not labelled. Forecasts are at "
              + ", ".join(horizons) + " the curve's largest scale, with their interval.")
    page.table(display(counts, ["label", "curves"]), "trends_labels.csv", "Curves per label (counted from trends.csv)")
    flagged = tr[tr["label"].isin(FLAGGED)].reset_index(drop=True)
    if flagged.empty:
        page.para("No curve is flagged emergent, inverse or U-shaped.")
    else:
        page.table(display(flagged, TREND_KEY + ["label", "n_points", "form", "evidence"]), "trends.csv",
                   "Flagged curves: label and evidence")
        fc_cols = TREND_KEY + ["label"] + [f"{k}_{h}" for h in horizons for k in ("pred", "lo", "hi")]
        page.table(display(flagged, fc_cols), "trends.csv",
                   "Forecasts of the flagged curves (pred with lo-hi interval at each horizon)")
        extra = flagged[flagged["cross_compute"].notna() | flagged["turn"].notna()] \
            if {"cross_compute", "turn"} <= set(flagged.columns) else flagged.iloc[:0]
        if len(extra):
            page.table(display(extra, TREND_KEY + ["label", "cross_level", "cross_compute", "cross_compute_lo",
                                                   "cross_compute_hi", "cross_method", "turn", "turn_x"]),
                       "trends.csv", "Where flagged curves cross chance + margin (compute, FLOPs), or turn")
        maxp = int(cfg.get("max_trend_plots", 24))
        path = plots / "trends_flagged.png"
        page.figure(path, plot_trend_curves, (inp, flagged, maxp), "flagged curves",
                   "One panel per flagged curve: data, chance level (dotted) and forecasts with intervals.")
        if len(flagged) > maxp:
            page.note(f"Only the first {maxp} flagged curves are drawn (report.max_trend_plots).")
    em = inp.emergence
    if em is not None and len(em) and "cross_compute" in em.columns:
        suites = set((trends_cfg.get("emergence") or {}).get("report_suites") or [])
        show = em[(em["label"].isin(FLAGGED + ("positive", "flat", "noisy")) | em["suite"].isin(suites))
                  & em["cross_compute"].notna()].reset_index(drop=True)
        if len(show):
            with page.details(f"Emergence: where accuracy crosses chance + margin ({len(show)} rows)"):
                page.table(display(show, TREND_KEY + ["label", "method", "level", "cross_compute", "cross_compute_lo",
                                                      "cross_compute_hi", "cross_params", "detail"]),
                           "trends_emergence.csv", "Crossing of chance + margin by each route (inf: beyond 1000x "
                           "the family's largest compute)")
    labelled = tr[tr["label"].isin(("positive", "flat", "noisy"))].reset_index(drop=True)
    if len(labelled):
        with page.details(f"Other labelled curves ({len(labelled)})"):
            cols = TREND_KEY + ["label", "n_points", "form"]
            if horizons:
                h = horizons[min(1, len(horizons) - 1)]
                cols += [f"pred_{h}", f"lo_{h}", f"hi_{h}"]
            page.table(display(labelled, cols), "trends.csv")
    if inp.trends_metrics:
        tm = metrics_frame(inp.trends_metrics)
        page.para("Backtest of the labels and forecasts (trends.backtest in params.yaml): each family's curves are "
                  "labelled and forecast from its small models only and compared with all models (label agreement) "
                  "and with the held-out values (interval coverage, MAE in accuracy units). Per point in "
                  "reports/trends_backtest.csv; the trends stage's own summary is reports/trends.md.")
        cols = ["split"] + [c for c in ("label_agreement", "label_agreement_curves", "curves", "interval_coverage",
                                        "heldout_points", "mae_accuracy", "max_abs_error_accuracy") if c in tm.columns]
        page.table(display(tm, cols), "trends_metrics.json", "Trends backtest (split ALL = every split together)")


def metrics_frame(metrics: dict) -> pd.DataFrame:
    """A stage's DVC metrics JSON as rows: ``split`` ALL for the top-level numbers, then one per split."""
    top = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    rows = [{"split": "ALL", **top}]
    for name, vals in (metrics.get("splits") or {}).items():
        rows.append({"split": name, **{k: v for k, v in vals.items() if not isinstance(v, dict)}})
    return pd.DataFrame(rows)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    scores.atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n"))


# -------------------------------------------------------------------------------------- main
def build(inp: Inputs, cfg: dict, out: Path, splits_cfg: dict | None = None,
          trends_cfg: dict | None = None) -> tuple[str, str]:
    """Write the plots and return (html, markdown)."""
    plots = out / "plots"
    splits_cfg = splits_cfg or {}
    summary = data_summary(inp.scores)
    scores.atomic_write(out / "data_summary.csv", lambda tmp: summary.to_csv(tmp, index=False, lineterminator="\n"))
    page = Page()
    page.heading(1, "capcast: forecast report", "top")
    page.para("What each family will score at a target size and how sure that is, how the forecasting methods "
              "did on backtests, how the families compare in compute efficiency, and which curves are emergent or "
              "inverse. Every table names the CSV under reports/ (or data/) it was printed from; numbers are "
              "those cells at 3 significant digits.", cls="lead")
    chosen, evidence = (choose_methods(inp, cfg) if inp.forecast is not None else (pd.DataFrame(), pd.DataFrame()))
    section_targets(page, inp, chosen, evidence, plots)
    section_methods(page, inp, cfg, splits_cfg, plots)
    section_family(page, inp, cfg, plots)
    section_trends(page, inp, cfg, trends_cfg or {}, out, plots)
    section_data(page, inp, summary, cfg, plots)
    page.draw(int(cfg.get("processes", 2)))
    return page.render_html("capcast forecast report"), page.render_md()


def _section(path, name: str) -> dict:
    """Another stage's params section, for descriptive text only (split descriptions, report suites)."""
    try:
        return params.load(name, path)
    except Exception:  # absent: the text is optional
        return {}


def _main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline report", description=__doc__.split("\n")[0])
    parser.add_argument("--scores", default="data/scores.parquet")
    parser.add_argument("--out-dir", default="reports", help="where the report goes")
    parser.add_argument("--in-dir", default=None, help="where the input CSVs are (default: --out-dir)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    cfg = params.load("report", args.params)
    out = Path(args.out_dir)
    inp = load_inputs(Path(args.scores), Path(args.in_dir) if args.in_dir else out)
    page_html, page_md = build(inp, cfg, out, _section(args.params, "backtest").get("splits") or {},
                               _section(args.params, "trends"))
    scores.atomic_write(out / "index.html", lambda tmp: Path(tmp).write_text(page_html, encoding="utf-8"))
    scores.atomic_write(out / "forecast.md", lambda tmp: Path(tmp).write_text(page_md, encoding="utf-8"))
    print(f"wrote {out}/index.html and {out}/forecast.md")
    return 0


def main(argv=None) -> int:
    from pipeline.__main__ import run_cli

    return run_cli(_main, argv)
