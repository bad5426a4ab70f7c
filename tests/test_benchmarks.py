"""The scoring benchmarks run (their numbers are in docs/laws.md; here only that they still work)."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from tests.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import synthetic_ladders  # noqa: E402


def test_synthetic_ladders_are_reproducible_and_score_every_method():
    a, b = synthetic_ladders.run(2, seed=1, bootstrap=0), synthetic_ladders.run(2, seed=1, bootstrap=0)
    assert a.equals(b)
    table = synthetic_ladders.summary(a)
    assert set(table["kind"]) == {"sizes", "budgets"}
    assert set(table["method"]) == set(synthetic_ladders.METHODS)
    assert np.isfinite(table["mae"]).all() and (table["mae"] > 0).all()


def test_a_synthetic_ladder_is_scored_on_sizes_beyond_its_training_rows():
    rows, _ = synthetic_ladders.ladder("budgets", np.random.default_rng(0))
    train, test = synthetic_ladders.split("budgets", rows)
    acc = rows["metric"] == "acc"
    assert test.loc[test["metric"] == "acc", "params"].min() > train["params"].max()
    assert rows.loc[acc, "value"].between(0, 1).all() and (rows.loc[~acc, "value"] > 0).all()


def test_fresh_ladders_are_cut_below_the_top_and_drawn_outside_the_calibration_zoo():
    import fresh_ladders
    from pipeline import params

    zoo = params.load("ladders")["zoo"]  # the calibration zoo's seeds: seed * 10000 + i, i < per_design
    calibration = {int(zoo["seed"]) * 10000 + i for i in range(int(zoo["per_design"]))}
    assert not calibration & set(range(fresh_ladders.FIRST_SEED, fresh_ladders.FIRST_SEED + 100))
    train, final, _ = fresh_ladders.cut("isoflop", fresh_ladders.FIRST_SEED, 16.0)
    assert len(final) == 1 and train["compute_flops"].max() <= final["compute_flops"].max() / 16
    table = fresh_ladders.summary(fresh_ladders.run(["isoflop"], 1, 16.0, ("auto", "line_final")))
    assert set(table["method"]) == {"auto", "line_final"} and (table["failed"] == 0).all()
    assert np.isfinite(table[["mae", "interval_score"]]).all().all()
    assert table.loc[table["method"] == "line_final", "mae_vs_line_final"].iloc[0] == 1.0


def test_interval_variants_patch_the_library_only_inside_their_block_and_keep_intervals_in_bounds():
    import interval_variants
    from pipeline.laws import conformal, policy

    rng = np.random.default_rng(3)
    n = 600
    phi = np.column_stack([np.ones(n), rng.uniform(0, 1, n)])
    e = 0.1 * rng.standard_normal(n) + 0.1 * (rng.uniform(size=n) < 0.2)  # a long upper tail
    fit = conformal.Conformal.fit(e, np.zeros(n), phi, 0.9)
    point, floor = np.full(50, 0.3), np.full(50, 0.25)
    in_use = fit.interval(point, floor, np.zeros(50), phi[:50])
    with interval_variants.variant_code("signed_tails"):
        lo, hi = fit.interval(point, floor, np.zeros(50), phi[:50])
    assert (floor <= lo).all() and (lo <= point).all() and (point <= hi).all() and (hi <= 1).all()
    assert not np.allclose(lo, in_use[0])  # the variant's code ran
    assert np.array_equal(fit.interval(point, floor, np.zeros(50), phi[:50])[0], in_use[0])  # and is gone after
    P, y, psi = rng.uniform(size=(40, 2)), rng.uniform(size=40), np.column_stack([np.ones(40), rng.uniform(size=40)])
    with interval_variants.variant_code("ridge=0.5"):
        patched = policy.Gate.fit(P, y, psi, np.ones(40))
    assert np.allclose(patched.A, policy.Gate.fit(P, y, psi, np.ones(40), ridge=0.5).A)
    assert not np.allclose(patched.A, policy.Gate.fit(P, y, psi, np.ones(40)).A)  # the default ridge is back
    big, in_use_k = conformal.Conformal.fit(e, np.zeros(n), phi, 0.9), conformal.NEIGHBOURS  # n > K: local
    with interval_variants.variant_code("neighbours=20"):
        assert conformal.NEIGHBOURS == 20
        few = big.local_shift_q(phi[:50])[1]
    assert conformal.NEIGHBOURS == in_use_k and not np.allclose(few, big.local_shift_q(phi[:50])[1])


def test_the_mixture_factor_rescales_auto_intervals_by_the_other_groups_errors_inside_the_bounds():
    import interval_variants
    from pipeline.laws import conformal

    rng = np.random.default_rng(5)
    n = 400
    feats = {c: rng.uniform(0.1, 1.0, n) for c in ("distance", "span", "noise", "level", "spread", "slope",
                                                    "top_slope", "curvature", "misfit", "rung_error")}
    point = rng.uniform(0.4, 0.7, n)
    judged = pd.DataFrame({**feats, "checkpoints": 10.0, "runs_per_budget": 1.0, "floor": 0.25, "ladder": np.arange(n),
                           "group": np.where(np.arange(n) < n // 2, "a", "b"), "candidate": "auto", "status": "ok",
                           "predicted": point, "lower": point - 0.05, "upper": point + 0.05})
    for spread_of_errors, wider in ((0.001, False), (0.2, True)):
        rows = judged.assign(actual=np.clip(point + spread_of_errors * rng.standard_normal(n), 0.26, 0.99))
        out = interval_variants.factor_intervals(rows)
        assert (out["lower"] >= 0.25).all() and (out["upper"] <= 1).all()
        assert (out["lower"] <= point).all() and (point <= out["upper"]).all()
        width = out["upper"] - out["lower"]
        assert (width > 0.1).all() if wider else (width < 0.1).all()  # the other group's errors set the width


def test_the_line_ladder_is_a_line_in_log_compute_whose_checkpoints_lag():
    import fresh_ladders

    rows, target = fresh_ladders.line_ladder(3)
    again, _ = fresh_ladders.line_ladder(3)
    assert rows.equals(again) and target == "line_task:acc"
    final = rows.loc[rows.groupby("model")["tokens"].idxmax()]
    x, y = np.log10(final["compute_flops"].to_numpy(float)), final["value"].to_numpy(float)
    resid = y - np.polyval(np.polyfit(x, y, 1), x)
    assert np.abs(resid).max() < 4 * final["stderr"].max()  # a line, within binomial noise
    assert 1.3 <= np.log10(final["params"].max() / final["params"].min()) <= 1.7
    train, held, task = fresh_ladders.cut(fresh_ladders.LINE, 3, 16.0)
    assert task == "line_task" and train["compute_flops"].max() <= held["compute_flops"].max() / 16


def test_backtest_calibration_judges_coverage_and_sharpness_of_pairs_with_enough_predictions():
    import backtest_calibration

    summary = pd.DataFrame({"split": ["s", "s", "s", "s", "s"], "method": ["ok", "low", "wide", "few", "ok"],
                            "task": ["ALL", "ALL", "ALL", "ALL", "piqa"], "n": [20, 20, 20, 9, 20],
                            "mae": [2.0, 2.0, 2.0, 2.0, 2.0], "coverage": [0.9, 0.7, 1.0, 0.1, 0.0],
                            "median_width": [8.0, 4.0, 40.0, 1.0, 1.0], "interval_score": [11.0, 13.0, 15.0, 99.0, 99.0]})
    table = backtest_calibration.judge(summary).set_index("method")
    assert list(table.index) == ["ok", "low", "wide"]  # per-task rows and pairs under 10 predictions are not judged
    assert table["passes"].to_dict() == {"ok": True, "low": False, "wide": False}
    assert not table.loc["low", "calibrated"] and table.loc["low", "sharp"]
    assert table.loc["wide", "calibrated"] and not table.loc["wide", "sharp"]  # 15 > 7 x 2


def test_quantile_averaging_averages_the_candidates_bounds_where_the_mixture_spans_them():
    import types

    import interval_variants
    from pipeline.laws import conformal, policy

    bounds = {"a": (0.30, 0.40), "b": (0.50, 0.60)}  # two candidates that disagree
    fake = types.SimpleNamespace(candidates=["a", "b"], intervals=bounds, level=0.9,
                                 _conformal=lambda m, p, f: tuple(np.full(len(p), v) for v in bounds[m]))
    fake.candidate_intervals = types.MethodType(policy.Policy.candidate_intervals, fake)  # the library's, on these bounds
    feats = pd.DataFrame({"floor": [0.0], "noise": [0.001]})
    P, W = np.array([[0.35, 0.55]]), np.array([[0.5, 0.5]])
    lo, hi = interval_variants.quantile_average_interval(fake, np.array([0.45]), feats, P, W)
    link = {k: conformal.to_link(np.array(v), 0.0) for k, v in bounds.items()}
    expect = conformal.from_link((link["a"] + link["b"]) / 2, 0.0)
    assert np.allclose([lo[0], hi[0]], expect)
    mix = conformal.mixture_interval(W, np.array([[0.30, 0.50]]), np.array([[0.40, 0.60]]), np.array([0.0]), 0.9)
    assert hi[0] - lo[0] < mix[1][0] - mix[0][0]  # the mixture spans both candidates' intervals
    assert mix[0][0] < 0.35 and mix[1][0] > 0.55


def test_fresh_ladders_refuses_an_unknown_variant_in_one_line(capsys):
    import fresh_ladders

    with pytest.raises(SystemExit) as exc:
        fresh_ladders.main(["--variant", "no_such"])
    assert exc.value.code == 2 and "--variant: choose from" in capsys.readouterr().err


def test_neighbour_purity_reads_each_class_against_the_other_groups_forecasts():
    import neighbour_purity
    from pipeline.ladders import calibration

    table = calibration.read(calibration.DEFAULT_PATH)
    out = neighbour_purity.run(table.loc[table["factor"] == 16], "line_final").set_index("kind")
    assert out[["purity", "share", "coverage"]].apply(lambda c: c.between(0, 1)).all().all()
    assert abs(out["share"].sum() - 1) < 1e-9
    assert out.loc["isoflop", "purity"] > 5 * out.loc["isoflop", "share"]  # a design its features betray


def test_the_gate_interactions_variant_gives_the_gate_the_distance_products_only_inside_its_block():
    import interval_variants
    from pipeline.laws import conformal, policy

    in_use = policy.learn_gate
    feats = pd.DataFrame({"distance": [0.5, 1.0], "span": 1.0, "noise": 0.01, "level": [0.2, 0.4], "spread": 0.1,
                          "slope": [0.05, -0.1], "top_slope": 0.0, "curvature": [0.1, 0.0], "checkpoints": 1.0,
                          "runs_per_budget": 1.0, "misfit": 1.0, "rung_error": 1.0})
    phi = interval_variants.gate_design(feats)
    assert phi.shape == (2, len(conformal.PHI) + len(interval_variants.INTERACTING))
    assert np.allclose(phi[:, len(conformal.PHI)], [0.5 * 0.2, 1.0 * 0.4])  # distance x level
    with interval_variants.variant_code("gate_interactions"):
        assert policy.learn_gate is interval_variants.learn_gate_interacting
    assert policy.learn_gate is in_use


def test_the_local_stacking_variant_leans_each_forecast_towards_the_candidate_its_neighbours_favour():
    import interval_variants
    from pipeline.laws import conformal, policy

    n_phi = len(conformal.PHI)
    gate = interval_variants.LocalGate(np.zeros((2, n_phi)), np.zeros(n_phi), np.ones(n_phi))  # alone: 0.5 each
    rng = np.random.default_rng(0)
    y = rng.uniform(0.3, 0.7, 120)
    near_a = np.arange(120) < 60  # calibration forecasts near psi = 0 (candidate 0 exact), the rest near 5 (candidate 1)
    gate.cal_psi = np.where(near_a[:, None], 0.0, 5.0) + rng.normal(0, 0.1, (120, n_phi - 1))
    gate.cal_P = np.column_stack([np.where(near_a, y, y + 0.1), np.where(near_a, y - 0.1, y)])
    gate.cal_y, gate.cal_w = y, np.ones(120)
    phi = np.zeros((2, n_phi))
    phi[:, 0], phi[1, 1:] = 1.0, 5.0
    W = gate.weights(phi)
    assert np.allclose(W.sum(axis=1), 1.0)
    share = interval_variants.LOCAL_SHARE
    assert np.allclose(W[:, 0], [(1 - share) * 0.5 + share, (1 - share) * 0.5], atol=1e-6)
    in_use = policy.learn_gate
    with interval_variants.variant_code("local_stacking"):
        assert policy.learn_gate is interval_variants.learn_gate_local
    assert policy.learn_gate is in_use


def test_class_tension_reproduces_auto_in_use_and_relearns_without_a_class():
    import class_tension
    from pipeline.ladders import calibration

    table = calibration.read(calibration.DEFAULT_PATH)
    out = class_tension.run(table, list(calibration.DEFAULT_CANDIDATES), ["emergent"],
                            ["near_chance", "isoflop", "multi_budget"])
    out = out.loc[out["factor"] == 16].set_index("kind")
    lolo = pd.read_csv(ROOT / "reports" / "ladders" / "lolo.csv")
    auto = lolo.loc[(lolo["factor"] == 16) & (lolo["method"] == "auto")].set_index("ladder_class")
    # the weights in use are the leave-one-ladder-out table's: the same MAE where auto forecast every unit
    for kind in ("near_chance", "isoflop", "multi_budget"):
        assert out.loc[kind, "n"] == auto.loc[kind, "shared_n"]
        assert out.loc[kind, "in use"] == pytest.approx(auto.loc[kind, "mae"], abs=0.006)
    assert np.isfinite(out["without emergent"]).all()
    assert (out["in use"] != out["without emergent"]).any()  # the weights were learned again
    assert (out["which"].isin(calibration.DEFAULT_CANDIDATES)).all()
    # docs/ladders.md quotes this run
    docs = " ".join((ROOT / "docs" / "ladders.md").read_text().split())
    near = out.loc["near_chance"]
    assert (f"near-chance tasks at 16× falls from {near['in use']:.2f} to {near['without emergent']:.2f}, still above "
            f"the final-checkpoint line's {near['line_final']:.2f}") in docs


def test_fresh_ladders_leave_out_a_ladder_too_narrow_to_cut_that_far(capsys):
    import fresh_ladders

    out = fresh_ladders.run(["near_chance"], 1, 1e9, ("line_final",))
    assert out.empty and list(out.columns) == fresh_ladders.COLUMNS
    assert "1 ladder(s) with fewer than 3 runs 1e+09x below the top left out: near_chance/5000" in capsys.readouterr().err
    assert fresh_ladders.summary(out).empty
