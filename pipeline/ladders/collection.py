"""Ladders: one family's runs on one task, the unit on which forecasts are learned and judged.

A ladder is what a researcher has before a large run: several smaller runs of one recipe (a
family, in one suite, at one shot count), each scored on a task, sometimes at many checkpoints,
with the task's loss where it was recorded.  capcast learns which forecast to trust, and how wide
its interval must be, from many ladders at once (leave one ladder group out), never from one
ladder's own top rung alone.

Real ladders come from the scores table: every (suite, family, shots, task) with an accuracy on
at least ``min_sizes`` distinct model sizes.  ``group`` is the family's lineage (pythia-deduped is
Pythia's recipe on deduplicated data), so that the ladders of one recipe, in whatever suite, are
left out together (the families registry names Pythia-deduped's lineage; params.yaml
``ladders.lineage`` can add others).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import scores

# One accuracy metric per task, in this order of preference (lm-eval's plain accuracy first).
ACCURACY_PREFERENCE = ("acc", "acc_norm", "exact_match", "mc2", "mc1", "pass@1", "prob_correct", "f1")
SIZE_DECIMALS = 2  # sizes within ~2% (log10 rounded to 0.01) are one rung


@dataclass(frozen=True)
class Ladder:
    """Rows of one ladder: the target's rows and, where there is one, the loss's rows."""

    name: str
    group: str  # ladders of one group are left out together
    kind: str  # "real", or the simulated design
    rows: pd.DataFrame
    target: str  # TASK:METRIC
    loss: str | None  # TASK:METRIC of the loss a two-step law goes through, None without one


def lineage(family: str, lineages: dict | None = None) -> str:
    """The recipe a family belongs to: ``lineages`` (params.yaml ``ladders.lineage``), else the
    families registry's (:mod:`pipeline.sources.families`), else the family itself."""
    from pipeline.sources.families import FAMILIES

    if family in (lineages or {}):
        return str(lineages[family])
    known = FAMILIES.get(family)
    return str(known.lineage) if known is not None and known.lineage else str(family)


def _sizes(rows: pd.DataFrame) -> int:
    return int(np.unique(np.round(np.log10(rows["params"].to_numpy(float)), SIZE_DECIMALS)).size)


def _accuracy_targets(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(task, metric) per task: its first metric in :data:`ACCURACY_PREFERENCE` present in ``rows``."""
    pairs = rows[["task", "metric"]].drop_duplicates()
    out = []
    for task, metrics in pairs.groupby("task", sort=True)["metric"]:
        have = set(metrics.astype(str))
        first = next((m for m in ACCURACY_PREFERENCE if m in have), None)
        if first is not None:
            out.append((str(task), first))
    return out


def _one_shot_setting(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most common shot count (ties: the smallest), so each unit has one value."""
    shots = rows["num_fewshot"].astype("Float64").fillna(-1.0)
    counts = shots.value_counts()
    best = min(counts.index[counts == counts.max()])
    return rows.loc[(shots == best).to_numpy()]


def _loss_for(family_rows: pd.DataFrame, task: str, losses: list[str], min_sizes: int) -> str | None:
    """The task's own bits per byte where the ladder has it, else the first of ``losses`` it has."""
    for name in [f"{task}:bpb", *losses]:
        t, _, m = name.rpartition(":")
        sel = family_rows.loc[(family_rows["task"] == t) & (family_rows["metric"] == m)]
        if len(sel) and _sizes(sel) >= min_sizes:
            return name
    return None


def real_ladders(table: pd.DataFrame, suites: list[str], min_sizes: int = 4, losses: list[str] | None = None,
                 lineages: dict | None = None) -> list[Ladder]:
    """Every (suite, family, shots, task) ladder of ``table`` with an accuracy on ``min_sizes``
    or more sizes, in a fixed order."""
    out = []
    for suite in suites:
        in_suite = table.loc[table["suite"] == suite]
        for family, fam in in_suite.groupby("family", sort=True):
            fam = fam.loc[(fam["tokens"] > 0)]
            if _sizes(fam) < min_sizes:
                continue
            for task, metric in _accuracy_targets(fam):
                target_rows = fam.loc[(fam["task"] == task) & (fam["metric"] == metric)]
                for shots, rows in target_rows.groupby(target_rows["num_fewshot"].astype("Float64").fillna(-1.0)):
                    if _sizes(rows) < min_sizes:
                        continue
                    loss = _loss_for(fam, task, list(losses or []), min_sizes)
                    parts = [rows]
                    if loss:
                        lt, _, lm = loss.rpartition(":")
                        parts.append(_one_shot_setting(fam.loc[(fam["task"] == lt) & (fam["metric"] == lm)]))
                    shot_text = "" if shots < 0 else f"/{int(shots)}shot"
                    out.append(Ladder(f"{suite}/{family}/{task}:{metric}{shot_text}", lineage(str(family), lineages),
                                      "real", pd.concat(parts, ignore_index=True), f"{task}:{metric}", loss))
    return out


def chance_of(ladder: Ladder) -> float:
    """The target's random-guess level (the ``chance`` column, else the built-in table)."""
    task, _, metric = ladder.target.rpartition(":")
    return scores.chance_level(task, metric, ladder.rows)


def simulated_ladders(n_per_design: int, seed: int = 0, folds: int = 10) -> list[Ladder]:
    """The simulated zoo (:mod:`pipeline.ladders.zoo`) as ladders, grouped into ``folds`` folds by
    seed (each fold holds ladders of every design, and is left out as one group; a larger zoo
    keeps the smaller one's folds)."""
    from pipeline.ladders import zoo

    return [Ladder(sim.name, f"zoo-fold{sim.seed % folds}", sim.design, sim.rows, sim.target, sim.loss)
            for sim in zoo.zoo(n_per_design, seed)]
