"""The two tables the ladder collection writes.

* the **forecast table** (``data/calibration/ladder_forecasts.csv``): every candidate's forecast of
  every ladder's top at every holdout factor, with the problem's features, plus the auto
  forecast made out of group; what :class:`pipeline.laws.policy.Policy` learns from;
* the **leave-one-ladder-out table** (``reports/ladders/lolo.csv``): per ladder class (real, and
  each simulated design) x holdout factor x method (and auto): MAE, coverage, median width and
  interval score of the out-of-group forecasts, on the forecasts every method made, failures
  counted.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ladders import lolo, scoring
from pipeline.laws.policy import AUTO, with_spread

STATUS_CHARS = 80  # a failure's reason, cut (the full one is in the log)
DROP = ["params", "tokens", "compute_flops"]  # the features carry what the policy needs of the scale


def forecast_table(harness_rows: pd.DataFrame, candidates: list[str], level: float) -> pd.DataFrame:
    """The harness rows with spread, plus the out-of-group auto forecasts, in a fixed order."""
    table = with_spread(harness_rows.drop(columns=DROP, errors="ignore"))
    table["status"] = table["status"].astype(str).str.slice(0, STATUS_CHARS)
    table = pd.concat([table, lolo.auto_forecasts(table, candidates, level)], ignore_index=True)
    return table.sort_values(["kind", "ladder", "factor", "candidate", "model"], kind="mergesort").reset_index(drop=True)


def write_forecasts(forecasts: pd.DataFrame, path) -> None:
    """Gzipped CSV with a fixed header time, so the same table is the same bytes."""
    from pipeline import scores

    text = forecasts.to_csv(index=False, float_format=scores.FLOAT_FORMAT, lineterminator="\n")
    # gzip.compress writes no file name into the header (writing to the temp file would put its random
    # name there) and mtime=0, so the same table is the same bytes on every machine
    packed = gzip.compress(text.encode(), mtime=0)
    scores.atomic_write(path, lambda tmp: Path(tmp).write_bytes(packed))


def lolo_table(evaluated: pd.DataFrame, methods: list[str], level: float) -> pd.DataFrame:
    """Per class x factor x method (and per factor over every class, class "ALL" ... by kind)."""
    rows = evaluated.assign(ladder_class=np.where(evaluated["kind"] == "real", "real", evaluated["kind"]))
    per_class = scoring.table(rows, methods, ["ladder_class", "factor"], level)
    overall = scoring.table(rows.assign(ladder_class="ALL"), methods, ["ladder_class", "factor"], level)
    out = pd.concat([per_class, overall], ignore_index=True)
    out["is_over_mae"] = out["interval_score"] / out["mae"]
    return out


def methods_of(candidates: list[str]) -> list[str]:
    return [AUTO] + list(candidates)


def ladders_from_config(scores_table: pd.DataFrame, cfg: dict) -> list:
    """Every real ladder of the configured suites, then the simulated zoo."""
    from pipeline.ladders import collection

    real = collection.real_ladders(scores_table, list(cfg["suites"]), int(cfg.get("min_sizes", 4)),
                                   list(cfg.get("losses") or []), dict(cfg.get("lineage") or {}))
    zoo_cfg = cfg.get("zoo") or {}
    sim = collection.simulated_ladders(int(zoo_cfg.get("per_design", 30)), int(zoo_cfg.get("seed", 0)),
                                       int(zoo_cfg.get("folds", 10))) if zoo_cfg.get("per_design", 30) else []
    return real + sim


def build(scores_table: pd.DataFrame, cfg: dict, processes: int = 1, log=print) -> pd.DataFrame:
    """The forecast table from the scores table and the ``ladders:`` settings (evaluate it as
    written, :func:`evaluate`: its floats are rounded there)."""
    from pipeline.ladders import harness

    candidates = list(cfg["candidates"])
    level = float(cfg.get("level", 0.9))
    ladders = ladders_from_config(scores_table, cfg)
    log(f"{len(ladders)} ladders ({sum(lad.kind == 'real' for lad in ladders)} real); fitting {len(candidates)} "
        f"candidates at factors {', '.join(f'{f:g}' for f in cfg['factors'])}")
    rows = harness.run(ladders, {c: (c, {}) for c in candidates}, [float(f) for f in cfg["factors"]], processes)
    return forecast_table(rows, candidates, level)


def evaluate(forecasts: pd.DataFrame, candidates: list[str], level: float) -> pd.DataFrame:
    """The leave-one-ladder-out table of a forecast table (auto rows included)."""
    evaluated = lolo.out_of_group_intervals(forecasts, candidates, level)
    return lolo_table(evaluated, methods_of(candidates), level)


def beyond_support(forecasts: pd.DataFrame, candidates: list[str], level: float, learned_at, scored_at: float
                   ) -> pd.DataFrame:
    """The leave-one-ladder-out table of a policy learned from the holdouts at ``learned_at`` alone,
    scored at ``scored_at`` (:func:`pipeline.ladders.lolo.beyond_support`)."""
    evaluated = lolo.beyond_support(forecasts, candidates, level, learned_at, scored_at)
    return lolo_table(evaluated, methods_of(candidates), level)


def new_design(forecasts: pd.DataFrame, candidates: list[str], level: float) -> pd.DataFrame:
    """The leave-one-ladder-out table of the simulated ladders with each design left out whole
    (:func:`pipeline.ladders.lolo.new_design`); class ALL: every simulated design."""
    evaluated = lolo.new_design(forecasts, candidates, level)
    return lolo_table(evaluated, methods_of(candidates), level)


def singles(group: pd.DataFrame) -> pd.DataFrame:
    """The single methods of one class x factor group of the leave-one-ladder-out table, by
    method, that share forecasts with auto."""
    return group.loc[group["method"] != AUTO].dropna(subset=["mae", "ref_mae"]).set_index("method")


def closest_single(single: pd.DataFrame, column: str) -> str | None:
    """The method of ``single`` (:func:`singles`) that beats auto's ``column`` on the forecasts
    both made by most, or loses to it by least (None where there is none)."""
    return (single["ref_" + column] - single[column]).idxmax() if len(single) else None


MARKDOWN_HEADER = ("| class | held out | n | auto MAE | coverage | median width | interval score | "
                   "line_final MAE / auto's | line_frontier MAE / auto's | closest single: MAE / auto's | "
                   "closest single: interval score / auto's |")


def markdown(lolo: pd.DataFrame) -> str:
    """The leave-one-ladder-out table's summary as docs/ladders.md prints it: auto per class and
    factor, the two lines beside it, the single method closest to it in MAE (the largest gain over
    auto on the forecasts both made) and the single method closest to it in interval score (the
    same), each with auto's on the same forecasts."""
    lines = [MARKDOWN_HEADER, "|" + "---|" * MARKDOWN_HEADER.count(" | ") + "---|"]
    order = {c: i for i, c in enumerate(sorted(set(lolo["ladder_class"]) - {"ALL"}) + ["ALL"])}
    for (cls, factor), g in sorted(lolo.groupby(["ladder_class", "factor"]), key=lambda t: (order[t[0][0]], t[0][1])):
        auto = g.loc[g["method"] == AUTO].iloc[0]
        single = singles(g)

        def pair(method, column, digits):
            row = single.loc[method]
            return f"{row[column]:.{digits}f} / {row['ref_' + column]:.{digits}f}"

        lines_cells = [pair(m, "mae", 2) if m in single.index else "–" for m in ("line_final", "line_frontier")]
        closest, sharpest = closest_single(single, "mae"), closest_single(single, "interval_score")
        cells = [cls, f"{factor:g}×", f"{int(auto['shared_n'])}", f"{auto['mae']:.2f}", f"{auto['coverage']:.2f}",
                 f"{auto['median_width']:.1f}", f"{auto['interval_score']:.1f}", *lines_cells,
                 f"{closest} {pair(closest, 'mae', 2)}",
                 f"{sharpest} {pair(sharpest, 'interval_score', 1)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
