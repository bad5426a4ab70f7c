"""The simulated zoo (pipeline/ladders/zoo.py): deterministic, valid scores rows, every design
showing the property it is named for, and truth_curve equal to the noise-free generator."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.ladders import zoo as zoo_module
from pipeline.ladders import zoo_forms as forms
from pipeline.ladders.zoo import DESIGNS, SimLadder, simulate, truth_curve, truth_loss, zoo

CHANCES = {0.0, 0.2, 0.25, 1 / 3, 0.5}
FINALS_ONLY = {"isoflop", "narrow_range", "broken_power_law"}
GOLDEN = {  # sha256 of simulate(design, 0).rows.to_csv(index=False), first 16 hex digits
    "checkpoints_constant_lr": "e933f2329fd51fa3", "multi_budget": "278e0e4c2375dbfd", "isoflop": "c572fc42d59d4a7a",
    "narrow_range": "91ee5b24c44439db", "broken_power_law": "9ce80067af6ce207", "odd_link": "f87cc2c76f17fca9",
    "near_chance": "d37223546270e93c", "near_ceiling": "39582e43591ee784", "emergent": "424150bd7b0c60d9",
    "inverse": "e3d527945f88daa7"}


@pytest.fixture(scope="module")
def the_zoo() -> list[SimLadder]:
    return zoo()


def of(the_zoo, design: str) -> list[SimLadder]:
    return [ladder for ladder in the_zoo if ladder.design == design]


def acc(ladder: SimLadder) -> pd.DataFrame:
    return ladder.rows[ladder.rows["metric"] == "acc"].reset_index(drop=True)


def finals(rows: pd.DataFrame) -> pd.DataFrame:
    """The finished runs: final models, or each run's last checkpoint."""
    last = rows.groupby("model")["step"].transform("max")
    return rows[rows["step"].isna() | (rows["step"] == last)].reset_index(drop=True)


def training(ladder: SimLadder, rows: pd.DataFrame) -> pd.DataFrame:
    return rows[~rows["model"].isin(ladder.truth["targets"])]


def check_ladder(ladder: SimLadder) -> None:
    """Schema, bounds and internal consistency of one ladder's rows."""
    rows, t = ladder.rows, ladder.truth
    pd.testing.assert_frame_equal(scores.validate(rows), rows)
    assert set(rows["suite"]) == {"zoo"} and set(rows["family"]) == {ladder.name}
    assert set(rows["source"]) == {f"simulated:{ladder.design}:{ladder.seed}"}
    assert set(rows["task"] + ":" + rows["metric"]) == {ladder.target, ladder.loss, t["corpus"]}
    assert set(rows["num_fewshot"]) == {0}
    a = acc(ladder)
    assert a["value"].between(0, 1).all() and set(a["chance"]) == {t["chance"]} and t["chance"] in CHANCES
    assert np.allclose(a["stderr"], np.sqrt(a["value"] * (1 - a["value"]) / t["n_items"]), rtol=1e-5, atol=1e-7)
    assert a["stderr"].max() < 0.031  # real benchmark sizes: at most ~3 points
    assert (rows.loc[rows["metric"] == "bpb", "value"] > 0).all()
    assert rows.loc[rows["metric"] == "bpb", "chance"].isna().all()
    assert np.allclose(rows["compute_flops"], 6 * rows["params"] * rows["tokens"], rtol=1e-5)
    assert rows["params"].between(1e7, 1.2e11).all()
    assert rows["tokens"].max() <= 1.5e13 and finals(a)["tokens"].min() >= 1e8
    per_model = rows.groupby("model")
    assert (per_model["params"].nunique() == 1).all()  # one model id per run
    if ladder.design in FINALS_ONLY:
        assert rows["step"].isna().all()
    assert (per_model["step"].apply(lambda s: s.isna().all() or s.notna().all())).all()
    assert set(t["targets"]) <= set(rows["model"]) and t["targets"]
    assert json.loads(json.dumps(t)) == t


# ------------------------------------------------------------------------ determinism, API
def test_same_seed_same_bytes_and_different_seed_different_rows():
    for design in DESIGNS:
        a, b = simulate(design, 0), simulate(design, 0)
        text = a.rows.to_csv(index=False)
        assert text == b.rows.to_csv(index=False)
        assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
        # the same bytes as when the zoo was written, on this machine and any other
        assert hashlib.sha256(text.encode()).hexdigest()[:16] == GOLDEN[design], (
            f"simulate({design!r}, 0) changed: update GOLDEN if the generator was changed on purpose, "
            "else something made the zoo depend on the machine or a library version")
        c = simulate(design, 1)
        assert not c.rows.equals(a.rows) and c.name != a.name and c.target != a.target


def test_names_targets_and_bad_arguments():
    ladder = simulate("emergent", 7)
    assert ladder.name == "zoo/emergent/0007" and ladder.seed == 7 and ladder.design == "emergent"
    assert ladder.target == "sim_8_7:acc" and ladder.loss == "sim_8_7:bpb"
    for bad in (("no_such_design", 0), ("isoflop", -1), ("isoflop", 1.5), ("isoflop", True)):
        with pytest.raises(CapcastError):
            simulate(*bad)
    with pytest.raises(CapcastError):
        zoo(0)


def test_zoo_is_large_unique_and_equal_to_simulate(the_zoo):
    assert len(the_zoo) >= 300 and [ladder.design for ladder in the_zoo].count("inverse") == 30
    assert len({ladder.name for ladder in the_zoo}) == len(the_zoo)
    assert len({ladder.target for ladder in the_zoo}) == len(the_zoo)
    for ladder in the_zoo[::41]:
        pd.testing.assert_frame_equal(ladder.rows, simulate(ladder.design, ladder.seed).rows)
    assert {ladder.seed for ladder in zoo(2, seed=1)} == {10000, 10001}


@pytest.mark.parametrize("design", DESIGNS)
def test_every_design_gives_valid_rows(the_zoo, design):
    for ladder in of(the_zoo, design)[:5]:
        check_ladder(ladder)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(design=st.sampled_from(DESIGNS), seed=st.integers(0, 10 ** 9))
def test_any_seed_of_any_design_is_valid_and_bounded(design, seed):
    ladder = simulate(design, seed)
    check_ladder(ladder)
    fin = finals(acc(ladder))
    truth = truth_curve(ladder, fin["params"], fin["tokens"])
    assert np.all((truth >= 0) & (truth <= 1))
    assert np.all(truth_loss(ladder, fin["params"], fin["tokens"]) > 0)


# ------------------------------------------------------------------------ truth
@pytest.mark.parametrize("design", DESIGNS)
def test_truth_curve_is_the_noise_free_generator(design):
    for seed in (0,) if design in FINALS_ONLY else (0, 1):
        clean, noisy = simulate(design, seed, noise=False), simulate(design, seed)
        key = ["model", "step", "task", "metric", "params", "tokens"]
        pd.testing.assert_frame_equal(clean.rows[key], noisy.rows[key])  # the same ladder
        fin = finals(acc(clean))
        assert np.allclose(fin["value"], truth_curve(clean, fin["params"], fin["tokens"]), rtol=6e-6, atol=1e-6)
        loss = finals(clean.rows[clean.rows["task"] + ":" + clean.rows["metric"] == clean.loss])
        assert np.allclose(loss["value"], truth_loss(clean, loss["params"], loss["tokens"]), rtol=6e-6)


def test_generating_forms_are_the_papers_forms():
    N, D = 1e9, 2e10
    kaplan = {"form": "kaplan", "E": 1.7, "Nc": 8.8e13, "Dc": 5.4e13, "aN": 0.076, "aD": 0.095}  # Kaplan's fit
    assert forms.loss(kaplan, N, D) == pytest.approx(1.7 + ((8.8e13 / N) ** 0.8 + 5.4e13 / D) ** 0.095)
    x, p = np.array([1.0, 10.0, 100.0]), {"b": 2.0, "c0": 0.1, "c1": 0.2, "d": 10.0, "f": 0.3}
    assert np.allclose(forms.bnsl(x, p), 2 * x ** -0.1 * (1 + (x / 10) ** (1 / 0.3)) ** (-0.2 * 0.3))
    rng = np.random.default_rng(0)
    for form in ("kaplan", "nonseparable"):  # each surface's compute optimum is its anchor run
        law = forms.draw_loss(rng, form)
        C, grid = 6 * forms.N0 * law["optimal_ratio"] * forms.N0, np.geomspace(forms.N0 / 3, forms.N0 * 3, 2001)
        assert grid[np.argmin(forms.loss(law, grid, C / (6 * grid)))] == pytest.approx(forms.N0, rel=0.01)
    z = np.array([-1.0, 0.0, 2.0])
    assert np.allclose(forms.cdf("richards", z, 3.0), (1 + 3 * np.exp(-z)) ** (-1 / 3))
    assert np.allclose(forms.cdf("gompertz", z, 1.0), np.exp(-np.exp(-z)))
    assert np.allclose(forms.cdf("probit", z, 1.0), [0.15865525, 0.5, 0.97724987])
    assert np.allclose(forms.cdf("weibull", z, 2.0), [0, 0, 1 - np.exp(-4)])
    for shape, nu in (("richards", 0.3), ("richards", 4.0), ("gompertz", 1.0), ("probit", 1.0), ("weibull", 2.5)):
        for y in (0.01, 0.3, 0.9):
            assert forms.cdf(shape, forms.cdf_inv(shape, y, nu), nu) == pytest.approx(y, rel=1e-9)


# ------------------------------------------------------------------------ each design's property
def test_constant_lr_checkpoints_lag_finished_runs(the_zoo):
    ratios, gaps = [], []
    for ladder in of(the_zoo, "checkpoints_constant_lr"):
        rows, lay = ladder.rows, ladder.truth["layout"]
        runs = rows.groupby("model")
        assert 6 <= runs.ngroups <= 12 and np.log10(rows["params"].max() / rows["params"].min()) >= 1.5
        assert runs["step"].nunique().between(10, 30).all()
        end = finals(acc(ladder))
        assert (end["tokens"] / end["params"]).between(9.5, 41).all()
        mid = rows[rows["step"] < runs["step"].transform("max") * (1 - lay["cooldown"])]
        loss = mid[mid["metric"] == "bpb"].query("task != 'corpus'")
        ratio = loss["value"] / truth_loss(ladder, loss["params"], loss["tokens"]) - 1
        assert ratio.mean() > 0.01  # a few percent above a finished run of the same D, every ladder
        ratios.append(ratio.mean())
        a = mid[mid["metric"] == "acc"]
        gaps.append(np.mean(truth_curve(ladder, a["params"], a["tokens"]) - a["value"]))
    assert 0.015 < np.mean(ratios) < 0.05
    assert np.mean(gaps) > 0.003 and np.mean(np.array(gaps) > 0) > 0.8  # so they score lower too


def test_multi_budget_is_sizes_times_budgets(the_zoo):
    for ladder in of(the_zoo, "multi_budget"):
        end = finals(acc(ladder))
        mult = end["tokens"] / end["params"] / 20
        assert mult.between(0.45, 35).all() and end["model"].is_unique
        assert (end.groupby("params")["model"].nunique() >= 4).all() and end["params"].nunique() >= 4
        assert acc(ladder).groupby("model").size().max() <= 3


def test_isoflop_has_budgets_with_sizes_around_the_optimum_and_one_optimal_target_beyond(the_zoo):
    for ladder in of(the_zoo, "isoflop"):
        a, lay = acc(ladder), ladder.truth["layout"]
        budgets, target = lay["budgets"], a["model"].isin(ladder.truth["targets"])
        assert len(budgets) >= 4 and 1.7 <= np.log10(max(budgets) / min(budgets)) <= 2.3
        on_budget = [np.isclose(a["compute_flops"], C, rtol=1e-4) for C in budgets]
        assert np.all(np.sum(on_budget, axis=0) == ~target)  # every sweep run on exactly one budget
        for C, opt, on in zip(budgets, lay["optimal_params"], on_budget):
            sizes = a.loc[on, "params"]
            assert len(sizes) >= 5 and sizes.min() < opt < sizes.max()
        # the target: one run, 2-20x beyond the largest sweep, within 0.1 decades of its optimum
        assert target.sum() == 1 and 1.9 <= lay["target_budget"] / max(budgets) <= 20.1
        assert a.loc[target, "compute_flops"].iloc[0] == pytest.approx(lay["target_budget"], rel=1e-3)
        optimum = zoo_module._optimum(ladder.truth["loss_law"], lay["target_budget"])
        assert abs(np.log10(lay["target_params"] / optimum)) <= 0.1 + 1e-3


def test_narrow_range_trains_on_a_narrow_span_and_targets_far_beyond(the_zoo):
    for ladder in of(the_zoo, "narrow_range"):
        lay, sizes = ladder.truth["layout"], set(acc(ladder)["params"])
        assert max(lay["train_params"]) / min(lay["train_params"]) <= 3
        assert min(lay["target_params"]) >= 10 * max(lay["train_params"])
        assert max(lay["target_params"]) <= 20.5 * max(lay["train_params"])
        assert sizes == set(lay["train_params"]) | set(lay["target_params"])


def test_broken_power_law_breaks_inside_or_just_beyond_the_ladder(the_zoo):
    modes = set()
    for ladder in of(the_zoo, "broken_power_law"):
        t, a = ladder.truth, acc(ladder)
        law = t["loss_law"] if t["loss_law"]["form"] == "bnsl" else t["link"]
        modes.add(law.get("form") or law["kind"])
        span = np.log10(a["compute_flops"].max() / a["compute_flops"].min())
        assert 0.3 * span - 1e-9 <= np.log10(law["d"]) <= 1.2 * span + 1e-9
        assert law["c1"] != 0
    assert modes == {"bnsl", "bnsl_error"}


def test_odd_links_are_outside_the_candidate_set(the_zoo):
    kinds = {ladder.truth["link"]["form"] for ladder in of(the_zoo, "odd_link")}
    assert kinds == {"gompertz", "weibull", "probit_low_ceiling", "mixture"}
    for ladder in the_zoo:
        for term in ladder.truth["link"].get("terms", []):
            assert term["shape"] != "richards" or abs(math.log(term["nu"])) >= math.log(2) - 1e-9  # no logistic


def test_near_chance_stays_within_a_few_points_of_chance(the_zoo):
    medians = []
    for ladder in of(the_zoo, "near_chance"):
        a, chance = finals(acc(ladder)), ladder.truth["chance"]
        truth = truth_curve(ladder, a["params"], a["tokens"])
        assert np.all(np.abs(truth - chance) <= 0.04)
        assert np.median(np.abs(acc(ladder)["value"] - chance)) < 0.06  # binomial noise: up to 3 points
        medians.append(np.median(np.abs(acc(ladder)["value"] - chance)))
    assert np.median(medians) < 0.03


def test_near_ceiling_saturates(the_zoo):
    for ladder in of(the_zoo, "near_ceiling"):
        a, ceil = finals(acc(ladder)), ladder.truth["link"]["ceil"]
        truth = truth_curve(ladder, a["params"], a["tokens"])
        assert 0.9 <= ceil <= 0.97 and ceil - truth.max() <= 0.026 and ceil - truth.min() >= 0.05
        assert a["value"].max() > 0.85


def test_emergent_starts_near_chance_and_ends_well_above(the_zoo):
    for ladder in of(the_zoo, "emergent"):
        a, chance = finals(acc(ladder)), ladder.truth["chance"]
        order = np.argsort(a["compute_flops"].to_numpy())
        truth = truth_curve(ladder, a["params"], a["tokens"])[order]
        assert truth[0] - chance < 0.03 and truth[-1] - chance > 0.1
        low = a["value"].to_numpy()[order][: max(2, len(a) // 4)]  # observed: chance up to binomial noise
        assert abs(low.mean() - chance) < 0.02 + 3 * math.sqrt(0.25 / ladder.truth["n_items"] / len(low))


def test_inverse_falls_with_scale_and_some_turn_up_beyond(the_zoo):
    shapes = []
    for ladder in of(the_zoo, "inverse"):
        a = training(ladder, finals(acc(ladder)))
        assert np.polyfit(np.log10(a["compute_flops"]), a["value"], 1)[0] < 0  # observed, not only the truth
        shapes.append(ladder.truth["link"]["u_shaped"])
        if shapes[-1]:  # beyond the ladder (N and D each its span of compute further) accuracy rises again
            end = finals(acc(ladder))
            top = end.loc[end["compute_flops"].idxmax()]
            far = end["compute_flops"].max() / end["compute_flops"].min()
            assert truth_curve(ladder, top["params"] * far, top["tokens"] * far) > \
                truth_curve(ladder, top["params"], top["tokens"]) + 0.02
    assert 0.2 < np.mean(shapes) < 0.8


def test_module_imports_only_numpy_pandas_and_the_schema():
    source = open(zoo_module.__file__).read() + open(zoo_module.forms.__file__).read()
    imports = {line.strip() for line in source.splitlines() if line.startswith(("import ", "from "))}
    allowed = {"from __future__ import annotations", "import math", "import numpy as np", "import pandas as pd",
               "from dataclasses import dataclass, field, replace", "from pipeline import scores",
               "from pipeline.errors import CapcastError", "from pipeline.ladders import zoo_forms as forms"}
    assert imports <= allowed, imports - allowed
