"""reach: how big to reach a goal.  On synthetic ladders whose law is known the true crossing lies in
the 90% interval at about the stated rate; a law whose ceiling is below the goal says "not reached";
the command's bad input ends in one line and exit 2; the answer comes with its own backtest."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import CapcastError
from pipeline.forecasting import family, reach
from pipeline.ladders.calibration import Source
from pipeline.stages import reach as reach_stage

CHANCE = 0.25  # arc_challenge's built-in level
SIZES = np.logspace(7.5, 9, 6)
RATIO = 20.0  # tokens per parameter
TOP = math.log10(6 * SIZES[-1] * RATIO * SIZES[-1])  # log10 of the largest model's compute
FEW = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def ladder(a: float, c0: float, seed: int = 0, ceiling: float = 1.0, items: int = 1000) -> pd.DataFrame:
    """Six sizes at 20 tokens per parameter, four checkpoints each, accuracy = chance + (ceiling -
    chance) * sigmoid(a (log10 C - c0)) with binomial noise of ``items`` questions."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        for frac in (0.25, 0.5, 0.75, 1.0):
            d = frac * RATIO * n
            c = 6 * n * d
            p = CHANCE + (ceiling - CHANCE) / (1 + np.exp(-a * (math.log10(c) - c0)))
            v = rng.binomial(items, p) / items
            rows.append({"model": f"toy-{n:.3g}", "family": "toy", "params": n, "tokens": d, "compute_flops": c,
                         "step": int(frac * 1000), "task": "arc_challenge", "metric": "acc", "value": v,
                         "stderr": math.sqrt(max(v * (1 - v), 1e-4) / items), "num_fewshot": 0,
                         "source": "synthetic", "suite": "toy"})
    df = pd.DataFrame(rows)
    return df.astype({"step": "Int64", "num_fewshot": "Int64"})


def true_log_c(goal: float, a: float, c0: float, ceiling: float = 1.0) -> float:
    q = (goal - CHANCE) / (ceiling - CHANCE)
    return c0 + math.log(q / (1 - q)) / a


@st.composite
def problems(draw, slopes, middles):
    """(ladder, goal, true log10 compute of the crossing): a law (its slope, and its middle relative to
    the largest model, in decades), and a goal 0.3-1 decade beyond the ladder."""
    a = draw(st.floats(*slopes))
    c0 = TOP + draw(st.floats(*middles))
    beyond = draw(st.floats(0.3, 1.0))
    goal = round(CHANCE + (1 - CHANCE) / (1 + math.exp(-a * (TOP + beyond - c0))), 3)
    seed = draw(st.integers(0, 10_000))
    return ladder(a, c0, seed), goal, true_log_c(goal, a, c0)


def _coverage(method: str, slopes: tuple, middles: tuple, examples: int) -> list[bool]:
    hits = []

    @settings(FEW, max_examples=examples)
    @given(problems(slopes, middles))
    def one(problem):
        rows, goal, truth = problem
        req = family.Request("toy", (), method=method, n_bootstrap=50, calibration=Source())
        r = reach.run(rows, [reach.Goal("arc_challenge", "acc", goal)], req, with_backtest=False).iloc[0]
        lo, hi = math.log10(r["compute_lower"]), math.log10(r["compute_upper"])
        if r["reached"]:  # the interval holds the point forecast, and N follows C on the recipe
            assert lo <= math.log10(r["compute_flops"]) <= hi
            assert r["compute_flops"] == pytest.approx(6 * r["params"] * r["tokens"])
            assert r["tokens"] == pytest.approx(RATIO * r["params"])
        hits.append(lo <= truth <= hi)

    one()
    return hits


def test_auto_covers_the_true_crossing_at_about_the_stated_rate():
    """auto (the default) on ladders that rise like language-model benchmarks (0.3-0.7 logit per
    decade of compute, the ladder above its middle): the 90% interval holds the true crossing in at
    least 60% of 15 ladders."""
    hits = _coverage("auto", (0.3, 0.7), (-1.5, -0.5), 15)
    assert len(hits) >= 12 and np.mean(hits) >= 0.6, hits


def test_the_known_law_covers_steep_crossings_at_about_the_stated_rate():
    """The sigmoid law on steeper ladders (0.8-2 logit per decade, the largest model near the middle):
    at least 60% of 12 ladders."""
    hits = _coverage("sigmoid", (0.8, 2.0), (-0.5, 0.5), 12)
    assert len(hits) >= 10 and np.mean(hits) >= 0.6, hits


def test_not_reached_when_the_laws_ceiling_is_below_the_goal():
    rows = ladder(1.5, TOP - 0.7, seed=3, ceiling=0.5)  # levels off at 0.5
    req = family.Request("toy", (), method="sigmoid", n_bootstrap=50)
    r = reach.run(rows, [reach.Goal("arc_challenge", "acc", 0.6)], req).iloc[0]
    assert not r["reached"] and np.isnan(r["compute_flops"])
    assert r["note"].startswith("not reached within 1e+04x the largest model: the law levels off below the goal")
    line = reach.line(r)
    assert "not reached" in line and "backtest:" in line


def test_a_goal_the_smallest_model_already_meets_says_so_once():
    rows = ladder(1.5, TOP + 0.5)
    req = family.Request("toy", (), method="sigmoid", n_bootstrap=20)
    r = reach.run(rows, [reach.Goal("arc_challenge", "acc", 0.2)], req, with_backtest=False).iloc[0]
    assert r["reached"] and r["note"].startswith("already reached by the family's smallest model")
    text = reach.line(r)
    assert text.count("interpolation") <= 1 and text.count("already reached") == 1, text
    r = reach.run(rows, [reach.Goal("arc_challenge", "acc", 0.5)], req, with_backtest=False).iloc[0]
    assert r["reached"] and r["note"] == "" and "interpolation" in r["extrapolation"]  # inside the ladder, said once


def test_the_backtest_holds_the_top_rung_out_and_scores_its_compute():
    rows = ladder(0.5, TOP - 0.5, seed=1)
    req = family.Request("toy", (), method="sigmoid", n_bootstrap=50)
    r = reach.run(rows, [reach.Goal("arc_challenge", "acc", 0.6)], req).iloc[0]
    top = rows[rows["params"] == SIZES[-1]].sort_values("tokens").iloc[-1]
    assert r["backtest_heldout"].startswith("largest size") and r["backtest_goal"] == pytest.approx(top["value"])
    assert r["backtest_compute_true"] == pytest.approx(top["compute_flops"])
    assert r["backtest_error_decades"] == pytest.approx(math.log10(r["backtest_compute"] / top["compute_flops"]))
    assert r["backtest_hit"] == (r["backtest_lower"] <= top["compute_flops"] <= r["backtest_upper"])
    assert "decades" in reach.line(r)


def test_the_recipe_is_the_ladders_own_unless_given():
    rows = ladder(0.5, TOP)
    assert str(reach.ladder_recipe(rows)) == "D=20xN"
    fixed = rows.assign(tokens=rows["tokens"] / rows["params"] * 1e10)
    assert reach.ladder_recipe(fixed.assign(compute_flops=6 * fixed["params"] * fixed["tokens"])).tokens == 2e11  # 20 x 1e10 at the last step


# ------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def scores_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("reach") / "scores.csv"
    ladder(0.5, TOP - 0.3, seed=2).to_csv(path, index=False)
    return path


def test_the_command_prints_one_line_per_goal_and_writes_the_csv(scores_csv, tmp_path, capsys):
    out = tmp_path / "reach.csv"
    rc = reach_stage.main(["--scores", str(scores_csv), "--family", "toy", "--goal", "arc_challenge:acc=0.6",
                           "--goal", "arc_challenge:acc=0.99", "--tokens-per-param", "20", "--method", "sigmoid",
                           "--bootstrap", "30", "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("toy arc_challenge:acc >= ") for line in lines)
    assert "C=" in lines[0] and "90%:" in lines[0] and "backtest:" in lines[0]
    table = pd.read_csv(out)
    assert list(table.columns) == reach.COLUMNS and table["goal"].tolist() == [0.6, 0.99]


@pytest.mark.parametrize("goal, words", [
    ("arc_challenge=0.6", "write TASK:METRIC=VALUE"),
    ("arc_challenge:acc=abc", "is not a number"),
    ("arc_challenge:acc=60", "must lie in [0, 1], got 60 (percent? write 0.6)"),
    ("arc_challenge:acc=-0.1", "must lie in [0, 1]"),
    ("arc_challenge:ppl=2", "not an accuracy"),
    ("hellaswag:acc=0.6", "no 'acc' rows of hellaswag"),
    ("hellaswag:acc=0.6", "fix --goal"),
])
def test_bad_goals_are_one_line_errors(scores_csv, capsys, goal, words):
    rc = reach_stage.main(["--scores", str(scores_csv), "--family", "toy", "--goal", goal, "--method", "sigmoid"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("loss, words", [
    ("arc_challenge:acc", "'acc' is not a loss metric"),
    ("lambada:ppl", "has no lambada:ppl rows"),
])
def test_a_loss_the_family_does_not_have_is_a_one_line_error_not_a_silent_forecast(scores_csv, capsys, loss, words):
    rc = reach_stage.main(["--scores", str(scores_csv), "--family", "toy", "--goal", "arc_challenge:acc=0.6",
                           "--loss", loss])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err and "--loss" in err, err
    with pytest.raises(CapcastError, match=words):
        family.run(pd.read_csv(scores_csv), family.Request("toy", ((1e9, 2e10),), tasks=("arc_challenge",), loss=loss))


def test_the_family_forecast_of_a_loss_is_refused_not_clipped_into_0_1(scores_csv):
    with pytest.raises(CapcastError, match="--metric bpb: not an accuracy"):
        family.run(pd.read_csv(scores_csv), family.Request("toy", ((1e9, 2e10),), metric="bpb"))


def test_the_command_never_writes_over_its_input(scores_csv, capsys):
    rc = reach_stage.main(["--scores", str(scores_csv), "--family", "toy", "--goal", "arc_challenge:acc=0.6",
                           "--out", str(scores_csv)])
    assert rc == 2 and "is also the input" in capsys.readouterr().err
    rc = reach_stage.main(["--scores", str(scores_csv), "--family", "toy", "--goal", "arc_challenge:acc=0.6",
                           "--tokens", "1e9", "--tokens-per-param", "20"])
    assert rc == 2 and "not both" in capsys.readouterr().err


def test_the_report_says_each_goal_in_one_sentence_of_reach_csv_cells(tmp_path):
    """"How big to reach it": one sentence per goal; every number in it is a cell of its reach.csv row."""
    from pipeline import report
    from pipeline.report.inputs import ReportInput

    rows = ladder(0.5, TOP - 0.3, seed=2)
    req = family.Request("toy", (), method="sigmoid", n_bootstrap=30)
    goals = [reach.Goal("arc_challenge", "acc", g) for g in (0.6, 0.99)]
    table = reach.run(rows, goals, req)
    table.to_csv(tmp_path / "reach.csv", index=False)
    table = pd.read_csv(tmp_path / "reach.csv")
    report.write(ReportInput(scores=rows, reach=table), report.ReportConfig(processes=1), tmp_path / "out")
    md = (tmp_path / "out" / "forecast.md").read_text()
    block = md[md.index("## How big to reach it"):]
    bullets = [line[2:] for line in block.splitlines() if line.startswith("- ")]
    assert len(bullets) == len(table)
    for b, (_, r) in zip(bullets, table.iterrows()):
        cells = {report.fmt(v) for v in r.to_numpy() if isinstance(v, (float, int, np.floating, np.integer))}
        words = " ".join(str(v) for v in r.to_numpy() if isinstance(v, str))
        for number in re.findall(r"(?<![\w.^+-])-?\d[\d.]*(?:e[+-]\d+)?(?![\w.])", b.replace("×", " ")):
            assert number in cells or number in words or number in ("90", "10"), (number, b)
    assert "is reached at N = " in bullets[0] and "not reached within" in bullets[1]


def test_caveats_say_at_chance_no_rise_and_no_task_losses():
    from pipeline.forecasting import caveats

    flat = ladder(2.0, TOP + 6, seed=4)  # the middle 6 decades beyond: at chance throughout
    said = caveats.ladder(flat, "arc_challenge", "acc")
    assert [s.split(":")[0] for s in said] == ["at chance"], said  # flat at chance: one caveat says both
    assert caveats.ladder(ladder(0.6, TOP - 1, seed=4), "arc_challenge", "acc") == []
    assert caveats.task_losses(flat, "arc_challenge")[0].startswith("no task losses")
    with_loss = pd.concat([flat, flat.assign(metric="bpb", value=1.0, stderr=np.nan)])
    assert caveats.task_losses(with_loss, "arc_challenge") == []
    assert caveats.task_losses(with_loss, "arc_challenge", "pile:xent")[0].startswith("no task losses")
    req = family.Request("toy", (), method="sigmoid", n_bootstrap=20)
    r = reach.run(flat, [reach.Goal("arc_challenge", "acc", 0.5)], req, with_backtest=False).iloc[0]
    assert r["caveats"].startswith("at chance") and "at chance" in reach.line(r)


def test_the_readme_reach_example_prints_what_the_readme_shows(capsys):
    from tests.paths import ROOT

    argv = ("--scores data/published/scores.csv --family pythia --suite pythia_evals --num-fewshot 0 "
            "--loss lambada_openai:ppl --tokens 3e11 --goal arc_easy:acc=0.75").split()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert " ".join(argv) in " ".join(text.split()), "the README names another reach command"
    assert reach_stage.main([a if a != "data/published/scores.csv" else str(ROOT / a) for a in argv]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("pythia arc_easy:acc >= 0.75") and printed in text


def test_a_goal_of_params_yaml_is_told_to_fix_its_own_key(scores_csv, tmp_path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("forecast: {interval: 0.9, seed: 0}\n"
                           "report: {goals: [{family: toyy, goal: 'arc_challenge:acc=0.6', method: sigmoid}]}\n")
    rc = reach_stage.main(["--from-params", "--params-file", str(params_file), "--scores", str(scores_csv),
                           "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no rows of family 'toyy'" in err and "fix params.yaml report.goals[0].family" in err, err
