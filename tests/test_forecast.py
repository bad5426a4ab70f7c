"""forecast stage: targets, recipes, the family comparison, and the forecast table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import scores
from pipeline.forecasting import comparison
from pipeline.forecasting import targets as forecast
from pipeline.forecasting.targets import ForecastError, Target
from pipeline.stages import forecast as forecast_stage
from tests.paths import ROOT


# ------------------------------------------------------------------------------- targets
def test_targets_tokens_or_tokens_per_param():
    cfg = {"targets": [
        {"name": "a", "family": "pythia", "suite": "s", "params": 30e9, "tokens": 300e9},
        {"name": "b", "family": "cerebras-gpt", "suite": "s", "params": "3.0e+10", "tokens_per_param": 20},
    ]}
    a, b = forecast.parse_targets(cfg)
    assert (a.tokens, a.fixed, a.compute_flops) == (300e9, "tokens", 6 * 30e9 * 300e9)
    assert (b.tokens, b.fixed) == (600e9, "ratio")


@pytest.mark.parametrize("bad, msg", [
    ({"tokens": 1e9, "tokens_per_param": 20}, "exactly one"),
    ({}, "exactly one"),
    ({"tokens": 1e9, "colour": "red"}, "unknown key"),
    ({"tokens": -1}, "must be > 0"),
])
def test_targets_errors_name_the_fix(bad, msg):
    t = {"name": "x", "family": "pythia", "suite": "s", "params": 1e9, **bad}
    with pytest.raises(ForecastError, match=msg):
        forecast.parse_targets({"targets": [t]})


@pytest.mark.parametrize("target, cfg, words", [
    (Target("z", "f", "s", 1e9, 1e10, loss="lam2:ppl"), {}, r"targets\[1\] \(z\): loss 'lam2:ppl' has no rows of family "
                                                        r"'f'.*its losses: lam:ppl"),
    (Target("z", "ff", "s", 1e9, 1e10), {}, r"targets\[1\] \(z\): family 'ff' has no rows.*families: f, g"),
    (Target("z", "f", "s2", 1e9, 1e10), {}, r"family 'f' has no rows in suite 's2' \(its suites: s\)"),
    (Target("z", "f", "s", 1e9, 1e10), {"metric": "acc_norm"}, r"no 'acc_norm' rows in suite 's'.*fix forecast.metric"),
    (Target("z", "f", "s", 1e9, 1e10), {"tasks": ["t", "tt"]}, r"forecast.tasks: 'tt' has no 'acc' rows of any"),
])
def test_a_target_names_rows_of_its_family_suite_metric_tasks_and_loss(target, cfg, words):
    table = pd.DataFrame({"family": ["f", "f", "g"], "suite": ["s"] * 3, "task": ["t", "lam", "lam2"],
                          "metric": ["acc", "ppl", "ppl"]})
    ok = Target("x", "f", "s", 1e9, 1e10, loss="lam:ppl")
    forecast.check_targets(table, [ok, Target("y", "f", "s", 1e9, 1e10)], {"tasks": ["t"]})
    with pytest.raises(ForecastError, match=words):
        forecast.check_targets(table, [ok, target], cfg)


def test_targets_need_names_once():
    t = {"name": "x", "family": "pythia", "suite": "s", "params": 1e9, "tokens": 1e9}
    with pytest.raises(ForecastError, match="the name 'x' is given twice"):
        forecast.parse_targets({"targets": [t, t]})
    with pytest.raises(ForecastError, match=r"'Pythia 7B' and 'pythia-7b' would share the report's figure "
                                            r"target-pythia-7b.png"):
        forecast.parse_targets({"targets": [{**t, "name": "Pythia 7B"}, {**t, "name": "pythia-7b"}]})
    with pytest.raises(ForecastError, match="empty"):
        forecast.parse_targets({"targets": []})


def test_recipe_keeps_compute_and_the_family_recipe():
    c = np.logspace(20, 23, 7)
    fixed_d = Target("p", "pythia", "s", 30e9, 300e9, "tokens")
    n, d = forecast.recipe(fixed_d, c, "tokens")
    assert np.allclose(6 * n * d, c) and np.all(d == 300e9)
    ratio = Target("c", "cerebras-gpt", "s", 30e9, 600e9, "ratio")
    n, d = forecast.recipe(ratio, c, "ratio")
    assert np.allclose(6 * n * d, c) and np.allclose(d / n, 20)
    n, d = forecast.recipe(ratio, np.array([ratio.compute_flops]), "ratio")
    assert np.allclose([n[0], d[0]], [30e9, 600e9])


# ------------------------------------------------------------------------- family comparison
def _cap(offsets: dict, slope=2.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for fam, b in offsets.items():
        for lc in np.linspace(20, 22, 6):
            rows.append({"suite": "s", "family": fam, "model": f"{fam}-{lc}", "params": 1e9, "tokens": 1e10,
                         "compute_flops": 10 ** lc, "capability": slope * lc + b + noise * rng.normal(),
                         "in_fit": True})
    return pd.DataFrame(rows)


def test_shared_slope_recovers_the_compute_multiplier():
    # X's line sits 1 capability unit below the reference's; slope 2 per decade: X needs 10^0.5 x the compute.
    off = comparison.shared_slope_fit(_cap({"ref": 0.0, "x": -1.0, "y": 0.5}), ["ref", "x", "y"], "ref", 0.9)
    got = off.set_index("family")
    assert got.loc["ref", "k"] == pytest.approx(1.0)
    assert got.loc["x", "k"] == pytest.approx(10 ** 0.5, rel=1e-6)
    assert got.loc["y", "k"] == pytest.approx(10 ** -0.25, rel=1e-6)
    assert np.allclose(got["slope"], 2.0) and np.allclose(got["own_slope"], 2.0)
    noisy = comparison.shared_slope_fit(_cap({"ref": 0.0, "x": -1.0}, noise=0.05), ["ref", "x"], "ref", 0.9)
    x = noisy.set_index("family").loc["x"]
    assert x["k_lower"] < 10 ** 0.5 < x["k_upper"] and x["k_lower"] < x["k"] < x["k_upper"]


def test_shared_slope_needs_the_reference():
    with pytest.raises(ForecastError, match="reference family 'z'"):
        comparison.shared_slope_fit(_cap({"ref": 0.0, "x": -1.0}), ["ref", "x", "z"], "z", 0.9)


def test_common_range_drops_models_outside_the_overlap():
    cap = _cap({"a": 0.0, "b": 0.0})
    cap.loc[cap["family"] == "b", "compute_flops"] *= 10  # b spans 1e21..1e23, a 1e20..1e22
    kept = comparison.common_range(cap, ["a", "b"], margin=1.0)
    assert kept["compute_flops"].min() >= 1e21 and kept["compute_flops"].max() <= 1e22


def _table(families=("pythia", "opt"), tasks=("piqa", "arc_easy", "winogrande"), seed=0):
    """Synthetic scores: accuracy rises with log compute; opt is 2x as compute-efficient."""
    rng = np.random.default_rng(seed)
    rows = []
    for fam in families:
        shift = np.log10(2.0) if fam == "opt" else 0.0
        for i, n in enumerate(np.logspace(8, 10, 6)):
            d = 3e11
            c = 6 * n * d
            for task in tasks:
                ch = scores.chance(task)
                acc = ch + (0.9 - ch) / (1 + np.exp(-1.5 * (np.log10(c) + shift - 21.5))) + 0.003 * rng.normal()
                rows.append({"suite": "s", "model": f"{fam}-{i}", "family": fam, "params": n, "tokens": d,
                             "compute_flops": c, "step": pd.NA, "task": task, "metric": "acc", "value": acc,
                             "stderr": 0.01, "num_fewshot": 0, "source": "synthetic"})
    return scores.validate(pd.DataFrame(rows))


def test_capability_rises_with_compute_and_offsets_find_the_efficient_family():
    table = _table()
    cap, tasks = comparison.capability_scores(table, "s", num_fewshot=0)
    assert tasks == ["arc_easy", "piqa", "winogrande"]
    for _, g in cap.groupby("family"):
        assert g.sort_values("compute_flops")["capability"].is_monotonic_increasing
    off, caps = comparison.family_comparison(
        table, {"family_comparison": [{"suite": "s", "reference": "pythia", "families": ["pythia", "opt"]}]}, 0.9)
    k = off.set_index("family").loc["opt", "k"]
    assert 0.3 < k < 0.8  # opt needs about half the compute (exactly 0.5 for a linear capability)
    assert list(off.columns) == comparison.OFFSET_COLUMNS and caps["in_fit"].all()
    with pytest.raises(ForecastError, match=r"family_comparison\[0\].families: 'optt' has no models.*families there: "
                                            r"opt, pythia"):  # a typo: not pythia compared with itself
        comparison.family_comparison(
            table, {"family_comparison": [{"suite": "s", "reference": "pythia", "families": ["pythia", "optt"]}]}, 0.9)


# ------------------------------------------------------------------------------- forecasts
def test_forecast_table_and_curves(tmp_path):
    table = _table(families=("pythia",))
    cfg = {"seed": 0, "interval": 0.9, "metric": "acc", "num_fewshot": 0, "tasks": ["piqa", "arc_easy", "sciq"],
           "methods": ["loglinear", "sigmoid"], "method_options": {"loglinear": {"n_bootstrap": 20},
                                                                     "sigmoid": {"n_bootstrap": 20}},
           "curve_points": 5,
           "targets": [{"name": "big", "family": "pythia", "suite": "s", "params": 1e11, "tokens": 3e11}]}
    with pytest.raises(ForecastError, match="forecast.tasks: 'sciq' has no 'acc' rows"):  # a task no family holds
        forecast.forecast_all(table, cfg)
    cfg["tasks"] = ["piqa", "arc_easy"]
    fc, curves, _ = forecast.forecast_all(table, cfg)
    assert list(fc.columns) == forecast.FORECAST_COLUMNS + ["note"]
    assert sorted(fc["task"].unique()) == ["arc_easy", "piqa"]
    assert len(fc) == 4 and fc["predicted"].notna().all()
    assert (fc["lower"] <= fc["predicted"]).all() and (fc["predicted"] <= fc["upper"]).all()
    assert np.allclose(fc["compute_flops"], 6 * 1e11 * 3e11)
    assert len(curves) == 4 * 5
    last = curves.groupby(["task", "method"])["compute_flops"].max()
    assert np.allclose(last, 6 * 1e11 * 3e11)
    assert np.allclose(curves["compute_flops"], 6 * curves["params"] * curves["tokens"])
    again, _, _ = forecast.forecast_all(table, cfg)
    pd.testing.assert_frame_equal(fc, again)  # seeded: the same numbers twice


def test_forecast_records_a_failed_method_instead_of_stopping():
    table = _table(families=("pythia",))
    cfg = {"metric": "acc", "tasks": ["piqa"], "methods": ["two_step"], "curve_points": 3,
           "targets": [{"name": "big", "family": "pythia", "suite": "s", "params": 1e11, "tokens": 3e11}]}
    fc, curves, _ = forecast.forecast_all(table, cfg)
    assert fc["predicted"].isna().all() and "loss" in fc["note"].iloc[0]
    assert curves.empty


def test_forecast_cli_writes_rounded_csvs(tmp_path):
    table = _table()
    path = tmp_path / "scores.parquet"
    scores.write(table, path)
    params = tmp_path / "params.yaml"
    params.write_text(
        "forecast:\n  seed: 0\n  metric: acc\n  num_fewshot: 0\n  methods: [loglinear]\n"
        "  method_options: {loglinear: {n_bootstrap: 10}}\n  curve_points: 4\n"
        "  targets:\n    - {name: t, family: opt, suite: s, params: 1.0e+11, tokens: 3.0e+11}\n"
        "  family_comparison:\n    - {suite: s, reference: pythia, families: [pythia, opt]}\n")
    assert forecast_stage.main(["--scores", str(path), "--out-dir", str(tmp_path), "--params", str(params)]) == 0
    text = (tmp_path / "forecast.csv").read_text()
    assert text.splitlines()[0] == ",".join(forecast.FORECAST_COLUMNS + ["note"])
    for line in text.splitlines()[1:]:
        for cell in line.split(","):
            if cell.replace(".", "").isdigit():
                assert len(cell.replace(".", "").lstrip("0")) <= 6, cell
    assert len(pd.read_csv(tmp_path / "family_offsets.csv")) == 2


# ------------------------------------------------------------------------------- real data
def test_offsets_agree_with_the_observational_laws_family_lines():
    """The laws engineer's Observational law fits the same shared-slope family lines on its own PCA
    (centred, unscaled); on the one-harness Cerebras table the compute multipliers agree."""
    from pipeline import laws

    table = scores.read(ROOT / "data/published/scores.csv")  # the committed table: no dvc repro needed
    rows = table[(table["suite"] == "cerebras_modelzoo") & (table["num_fewshot"] == 0) & (table["metric"] == "acc")]
    law = laws.make("observational_compute", target="arc_easy:acc", n_bootstrap=0).fit(rows)
    fams = list(law.families_)
    b, s = law.family_intercepts_[:, 0], law.slope_[0]
    theirs = {f: 10 ** ((b[fams.index("pythia")] - b[fams.index(f)]) / s) for f in ("opt", "pythia-deduped")}
    cap, _ = comparison.capability_scores(table, "cerebras_modelzoo", num_fewshot=0)
    ours = comparison.shared_slope_fit(cap, ["pythia", "pythia-deduped", "opt", "cerebras-gpt"], "pythia", 0.9)
    ours = ours.set_index("family")["k"]
    for fam, k in theirs.items():
        assert 0.75 < ours[fam] / k < 1.33, (fam, ours[fam], k)


def test_non_embedding_counts_extrapolate_the_registry():
    from pipeline.sources import families

    pythia = families.FAMILIES["pythia"].models
    n = np.array([m.params for m in pythia])
    est = forecast.non_embedding("pythia", n)
    assert np.allclose(est, [m.params_non_embedding for m in pythia], rtol=0.06)
    big = forecast.non_embedding("pythia", np.array([30e9]))[0]
    assert 0.95 * 30e9 < big < 30e9
    opt = forecast.non_embedding("opt", np.array([1e9]))[0]  # from OPT's published shapes
    assert 0.8e9 < opt < 1e9
    assert forecast.non_embedding("bloom", np.array([1e9])) is None
