"""report stage: what a researcher opens after `dvc repro` (reports/index.html, reports/forecast.md, plots)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import params, plotting, scores


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
    idx = order.sort_values("_step").groupby(keys, dropna=False)["_step"].idxmax()
    return table.loc[np.sort(idx.to_numpy())]


def plot_accuracy_vs_compute(table: pd.DataFrame, cfg: dict, path: Path) -> None:
    rows = final_checkpoints(table.query("suite == @cfg['suite'] and metric == @cfg['plot_metric'] "
                                         "and num_fewshot == @cfg['num_fewshot']"))
    tasks = [t for t in cfg["plot_tasks"] if t in set(rows["task"])]
    fig, axes = plotting.plt.subplots(2, (len(tasks) + 1) // 2, figsize=(4 * ((len(tasks) + 1) // 2), 7), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        sub = rows[rows["task"] == task]
        for family, g in sub.groupby("family"):
            g = g.sort_values("compute_flops")
            ax.errorbar(g["compute_flops"], g["value"], yerr=g["stderr"].fillna(0), marker="o", ms=4,
                        label=family, color=plotting.family_color(family), capsize=2)
        ax.axhline(scores.chance(task, cfg["plot_metric"]), ls=":", color="grey", label="chance")
        ax.set(xscale="log", title=task, xlabel=plotting.AXIS_LABELS["compute_flops"], ylabel=cfg["plot_metric"])
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(f"{cfg['suite']}: {cfg['plot_metric']} at the final checkpoint vs compute ({cfg['num_fewshot']}-shot)")
    fig.tight_layout()
    plotting.save(fig, path)


def write_markdown(summary: pd.DataFrame, path: Path) -> None:
    lines = ["# capcast report", "", "## Data", "", summary.to_markdown(index=False), "",
             "![accuracy vs compute](plots/accuracy_vs_compute.png)", ""]
    scores.atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(lines)))


def _main(argv) -> int:
    cfg = params.load("report")
    parser = argparse.ArgumentParser(prog="python -m pipeline report", description=__doc__)
    parser.add_argument("--scores", default="data/scores.parquet")
    parser.add_argument("--out-dir", default="reports")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    table = scores.read(args.scores)
    summary = data_summary(table)
    scores.atomic_write(out / "data_summary.csv", lambda tmp: summary.to_csv(tmp, index=False, lineterminator="\n"))
    plot_accuracy_vs_compute(table, cfg, out / "plots" / "accuracy_vs_compute.png")
    write_markdown(summary, out / "forecast.md")
    print(f"wrote {out}/forecast.md")
    return 0


def main(argv=None) -> int:
    from pipeline.__main__ import run_cli

    return run_cli(_main, argv)
