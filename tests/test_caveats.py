"""The caveats of a forecast (pipeline/forecasting/caveats.py) on every line where its number appears:
a task at chance across the ladder, no rise, no task losses, a target inside the ladder, a target
far beyond it; one function behind the forecast stage's note and the family forecast's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.forecasting import caveats
from pipeline.forecasting import targets as forecast
from pipeline.ladders.calibration import Source
from pipeline.stages import forecast as forecast_stage
from tests.test_laws import ladder_rows

SIZES = (3e7, 6e7, 1.2e8, 2.5e8, 5e8, 1e9)


def at_chance_rows(seed: int = 0) -> pd.DataFrame:
    """The toy ladder, with a second task whose accuracy stays at its chance level 0.25."""
    rows = ladder_rows(sizes=SIZES, steps=(10000, 40000, 100000), noise=0.003)
    flat = rows[rows["task"] == "arc_easy"].copy()
    rng = np.random.default_rng(seed)
    flat["task"], flat["value"] = "arc_challenge", 0.25 + rng.normal(0, 0.004, len(flat))
    return pd.concat([rows, flat], ignore_index=True)


def test_at_chance_only_where_the_whole_ladder_sits_at_chance():
    rows = at_chance_rows()
    text = caveats.at_chance(rows, "arc_challenge:acc")
    assert text.startswith("at chance: arc_challenge stays within noise of its chance level 0.25 across the ladder")
    assert caveats.at_chance(rows, "arc_easy:acc") == ""  # rises with scale
    assert caveats.at_chance(rows, "toyloss:ppl") == ""  # not an accuracy
    # flat, but well above chance: no rise, yet not at chance
    above = rows.assign(value=np.where(rows["task"] == "arc_challenge", rows["value"] + 0.2, rows["value"]))
    assert caveats.at_chance(above, "arc_challenge:acc") == ""
    # at chance at the small end, then rising: not flat
    rising = rows.copy()
    big = (rising["task"] == "arc_challenge") & (rising["params"] >= 5e8)
    rising.loc[big, "value"] += 0.15
    assert caveats.at_chance(rising, "arc_challenge:acc") == ""


def test_no_losses_for_two_step_and_auto_only_without_a_loss_named():
    rows = at_chance_rows()
    bare = rows[rows["task"] != "toyloss"]
    assert caveats.no_losses(bare, "arc_easy:acc", "two_step", None) == caveats.NO_LOSSES
    assert caveats.no_losses(bare, "arc_easy:acc", "auto", None) == caveats.NO_LOSSES
    assert caveats.no_losses(bare, "arc_easy:acc", "loglinear", None) == ""  # does not go through a loss
    assert caveats.no_losses(bare, "arc_easy:acc", "two_step", "toyloss:ppl") == ""  # another task's loss, named
    with_bpb = pd.concat([bare, bare[bare["task"] == "arc_easy"].assign(metric="bpb", value=1.0)])
    assert caveats.no_losses(with_bpb, "arc_easy:acc", "two_step", None) == ""
    # another task's loss in the rows, not named: the caveat names it, not a re-run of lm-eval
    other = caveats.no_losses(rows, "arc_easy:acc", "two_step", None)
    assert other.startswith("no task losses of arc_easy") and "--loss" in other and "toyloss:ppl" in other


def test_the_note_joins_every_caveat_in_order():
    rows = at_chance_rows()
    bare = rows[rows["task"] != "toyloss"]
    note = caveats.note(bare, "arc_challenge:acc", "two_step", "interpolation: inside the training runs' compute",
                        failure="two_step: no loss", backtest="too few sizes")
    parts = note.split("; ")
    assert parts[0] == "two_step: no loss" and parts[1].startswith("at chance: arc_challenge")
    assert parts[2] == caveats.NO_LOSSES and parts[3] == "interpolation: inside the training runs' compute"
    assert parts[4] == "backtest: too few sizes"
    assert caveats.note(rows, "arc_easy:acc", "loglinear") == ""


class NoRise:
    form_ = "log_logistic"

    def form_label(self):
        return "log_logistic (no rise: log_linear)"


class Auto:  # what the caveats read of auto: its fitted candidates, a failed one as the exception
    def form_label(self):
        return "two_step 0.60, sigmoid 0.40"

    fits_ = {"two_step": NoRise(), "sigmoid": ValueError("not fitted")}


def test_no_rise_is_read_from_the_law_or_autos_candidates():
    assert caveats.no_rise(NoRise()).startswith("no rise: accuracy does not rise with the task loss")
    assert caveats.no_rise(Auto()) == caveats.no_rise(NoRise())
    assert caveats.no_rise(Auto.fits_["sigmoid"]) == ""


# ----------------------------------------------------------------------------- both front doors
def table_csv(tmp_path, rows) -> str:
    path = tmp_path / "mine.csv"
    rows.to_csv(path, index=False)
    return str(path)


def family_lines(capsys, path, *extra, out=None) -> tuple[list[str], pd.DataFrame]:
    argv = ["--scores", path, "--family", "toy", "--bootstrap", "20", *extra]
    assert forecast_stage.main(argv + (["--out", str(out)] if out else [])) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    return lines, (pd.read_csv(out, keep_default_na=False) if out else None)


def test_family_lines_and_csv_carry_the_caveats(tmp_path, capsys):
    path = table_csv(tmp_path, at_chance_rows())
    out = tmp_path / "fc.csv"
    # inside the ladder (N = 2.5e8, D of the top checkpoint) and 30x beyond it
    lines, fc = family_lines(capsys, path, "--params", "2.5e8,1e10", "--tokens", str(100000 * 2_097_152),
                             "--method", "loglinear", out=out)
    by = {(r.task, r.params): r.note for r in fc.itertuples()}
    for line, r in zip(lines, fc.itertuples()):
        assert line.endswith(f"({r.note})"), line  # the console line prints the CSV's note
    assert by["arc_challenge", 2.5e8].startswith("at chance: arc_challenge")
    assert "interpolation: inside the training runs' compute" in by["arc_challenge", 2.5e8]
    assert "interpolation" in by["arc_easy", 2.5e8] and "at chance" not in by["arc_easy", 2.5e8]
    assert "x the largest training run's compute" in by["arc_easy", 1e10]


def test_a_bigger_model_inside_the_ladders_compute_is_not_called_an_interpolation(tmp_path, capsys):
    from pipeline.forecasting import targets
    from pipeline.report import evidence

    rows = at_chance_rows()
    path = table_csv(tmp_path, rows)
    final = rows.loc[rows["task"] == "arc_easy"].sort_values("tokens").drop_duplicates("model", keep="last")
    n_max, d_max = final["params"].max(), final["tokens"].max()
    out = tmp_path / "fc.csv"
    # 3x the largest N on a tenth of its tokens (inside the compute), and half of both
    family_lines(capsys, path, "--params", f"{3 * n_max},{n_max / 2}", "--tokens", f"{d_max / 10},{d_max / 2}",
                 "--method", "loglinear", out=out)
    fc = pd.read_csv(out, keep_default_na=False)
    bigger = fc.loc[(fc["task"] == "arc_easy") & (fc["params"] == 3 * n_max), "extrapolation"].iloc[0]
    assert bigger.startswith(evidence.INSIDE_BUT) and evidence.INSIDE_BUT == targets.INSIDE_BUT
    assert "N 3x the largest training model's" in bigger and "D " not in bigger
    inside = fc.loc[(fc["task"] == "arc_easy") & (fc["params"] == n_max / 2), "extrapolation"].iloc[0]
    assert inside == "interpolation: inside the training runs' compute"
    longer = targets.extrapolation(rows, "arc_easy:acc", 6 * (n_max / 4) * (3 * d_max), None, n_max / 4, 3 * d_max)
    assert longer["distance"] < 0 and "D 3x the longest training run's tokens" in longer["extrapolation"]
    beyond = targets.extrapolation(rows, "arc_easy:acc", 6 * 30 * n_max * d_max, None, 30 * n_max, d_max)
    assert beyond["distance"] > 0 and "x the largest training run's compute" in beyond["extrapolation"]


def test_a_target_far_past_the_calibration_says_so(tmp_path, capsys):
    path = table_csv(tmp_path, ladder_rows(sizes=SIZES, steps=(10000, 40000, 100000), noise=0.003))
    lines, fc = family_lines(capsys, path, "--params", "1e30", "--tokens-per-param", "20", "--loss", "toyloss:ppl",
                             out=tmp_path / "fc.csv")
    (note,) = fc["note"]
    assert "beyond what the calibration ladders support" in note and note in lines[0]
    # its interval is all of [chance, 1], and the caveats the report prints say so
    assert fc["caveats"].iloc[0].startswith("wide interval: 0.25-1.00 spans most of [0.25, 1]") and "wide interval" in note


def test_two_step_without_task_losses_says_to_log_samples(tmp_path, capsys):
    rows = at_chance_rows()
    path = table_csv(tmp_path, rows[rows["task"] != "toyloss"])
    lines, fc = family_lines(capsys, path, "--params", "7e9", "--tokens", "2e11", "--method", "two_step",
                             "--tasks", "arc_easy", out=tmp_path / "fc.csv")
    (line,) = lines
    assert "no forecast (two_step: " in line and caveats.NO_LOSSES in line
    assert caveats.NO_LOSSES in fc["note"].iloc[0]
    # the header names the rung the ladder holds out, not "too few rungs": the law failed, not the ladder
    assert fc["heldout"].iloc[0].startswith("largest size")


def test_the_forecast_stage_and_the_family_forecast_write_the_same_note(tmp_path, capsys):
    rows = at_chance_rows()
    n, d = 7e9, 2e11
    cfg = {"seed": 0, "interval": 0.9, "metric": "acc", "num_fewshot": 0, "tasks": ["arc_easy", "arc_challenge"],
           "methods": ["loglinear"], "method_options": {"loglinear": {"n_bootstrap": 20}}, "curve_points": 5,
           "targets": [{"name": "big", "family": "toy", "suite": "toy", "params": n, "tokens": d}]}
    source = Source()  # the family forecast's calibration: the same policy for both
    stage, _, _ = forecast.forecast_all(rows, cfg, policy=source.policy(0.9) if source.path.exists() else None)
    _, family = family_lines(capsys, table_csv(tmp_path, rows), "--params", str(n), "--tokens", str(d),
                             "--method", "loglinear", out=tmp_path / "fc.csv")
    for task in ("arc_easy", "arc_challenge"):
        ours = stage.loc[stage["task"] == task, "note"].iloc[0]
        theirs = family.loc[family["task"] == task, "note"].iloc[0]
        assert ours and ours == theirs.split("; backtest: ")[0], (ours, theirs)
    assert stage.loc[stage["task"] == "arc_challenge", "note"].iloc[0].startswith("at chance")


# ------------------------------------------------------------- the own-ladder journey, no samples
@pytest.fixture(scope="module")
def bare_ladder(lm_eval_runs, tmp_path_factory):
    """The README's step 1 on the tiny ladder, forgetting --log_samples: lm-eval's folder without
    its samples files (lm-eval writes the same results JSON either way: it records no
    log_samples setting)."""
    import shutil

    from tests.test_lm_eval_import import LADDER

    out = tmp_path_factory.mktemp("no_samples") / "out"
    shutil.copytree(lm_eval_runs, out)
    for samples in out.rglob("samples_*.jsonl"):
        samples.unlink()
    assert len(list(out.rglob("results_*.json"))) == len(LADDER) and not list(out.rglob("samples_*"))
    return out


@pytest.mark.slow
def test_the_own_ladder_journey_without_log_samples_says_what_is_missing(bare_ladder, tmp_path, capsys):
    from pipeline.stages import ingest as ingest_stage
    from pipeline.stages import report as report_stage
    from tests.test_lm_eval_import import LADDER, MC
    from tests.tiny_models import TOKENS_PER_STEP

    mine = tmp_path / "my_scores.csv"
    # 2. import: one warning line, naming the folder, the missing losses and the fix
    assert ingest_stage.main(["lm-eval", str(bare_ladder), "--family", "tiny-neox", "--tokens-per-step",
                              str(TOKENS_PER_STEP), "--out", str(mine)]) == 0
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert f"{bare_ladder} ({len(LADDER)} of {len(LADDER)} results files)" in warning
    assert "--log_samples" in warning and "two_step" in warning and "task losses" in warning
    assert "\r" not in err  # no progress bar where stderr is no terminal
    # 3. forecast, every method two_step is part of: the note says why it cannot run
    target = ["--scores", str(mine), "--family", "tiny-neox", "--params", "1e7", "--tokens", "1e9",
              "--tasks", MC, "--chance", f"{MC}=0.25", "--bootstrap", "20"]  # no samples: no chance from them
    for method in ("auto", "two_step"):
        assert forecast_stage.main(target + ["--method", method, "--out", str(tmp_path / f"{method}.csv")]) == 0
        lines = capsys.readouterr().out.strip().splitlines()[1:]
        assert lines and all(caveats.NO_LOSSES in line for line in lines), lines
        assert all(caveats.NO_LOSSES in n for n in pd.read_csv(tmp_path / f"{method}.csv")["note"])
    # 4. report: its forecast table carries the same note
    assert report_stage.main(target + ["--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    assert all(caveats.NO_LOSSES in n for n in pd.read_csv(tmp_path / "report" / "forecast.csv")["note"])


def test_an_interval_spanning_most_of_chance_to_one_says_why():
    rows = at_chance_rows()
    narrow, wide = caveats.wide_intervals(rows, "arc_challenge:acc", [0.24, 0.26], [0.40, 0.96])
    assert narrow == ""
    assert wide.startswith("wide interval: 0.26-0.96 spans most of [0.25, 1]: forecasts like this one erred")
    # training values well below chance: the interval's floor is 0, and the note says so
    below = rows.assign(value=np.where(rows["task"] == "arc_challenge", rows["value"] - 0.08, rows["value"]))
    (text,) = caveats.wide_intervals(below, "arc_challenge:acc", [0.05], [0.80])
    assert "lie below its chance level 0.25, so the interval is bounded by 0" in text
    assert caveats.wide_intervals(rows, "toyloss:ppl", [0.0], [50.0]) == [""]  # not an accuracy
    # the note of a forecast carries it
    note = caveats.note(rows, "arc_challenge:acc", "sigmoid", wide=wide)
    assert wide in note


def test_an_interval_reaching_under_chance_by_the_noise_says_so_unless_the_ladder_is_below_it():
    rows = at_chance_rows()
    under, above = caveats.below_chance(rows, "arc_challenge:acc", [0.2403, 0.2500])
    assert under.startswith("below chance: the interval reaches 0.240, under the chance level 0.25, "
                            "by the benchmark's measurement noise") and above == ""
    below = rows.assign(value=np.where(rows["task"] == "arc_challenge", rows["value"] - 0.08, rows["value"]))
    assert caveats.below_chance(below, "arc_challenge:acc", [0.10]) == [""]  # its floor is 0: not noise
    assert caveats.below_chance(rows, "toyloss:ppl", [0.0]) == [""]  # not an accuracy
    assert caveats.below_chance(rows, "arc_challenge:acc", [np.nan]) == [""]  # no interval


def test_the_family_forecast_of_a_task_at_chance_names_its_interval_under_chance(tmp_path, capsys):
    path = table_csv(tmp_path, at_chance_rows())
    lines, fc = family_lines(capsys, path, "--params", "1e10", "--tokens", str(100000 * 2_097_152),
                             "--method", "loglinear", out=tmp_path / "fc.csv")
    (flat,) = fc.loc[fc["task"] == "arc_challenge"].itertuples()
    assert flat.lower < 0.25 <= flat.predicted  # the measurement band reaches under chance ...
    assert f"below chance: the interval reaches {flat.lower:.3f}, under the chance level 0.25" in flat.note  # ... and says so
    (rising,) = fc.loc[fc["task"] == "arc_easy"].itertuples()
    assert "below chance" not in rising.note
