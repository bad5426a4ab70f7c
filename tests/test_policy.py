"""Row sets, the carry-forward baseline, conformal intervals in link space, stacking, and the
auto forecast (pipeline.laws.data.row_set, carry, conformal, policy, auto)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import FitError
from pipeline.laws import conformal, make
from pipeline.laws.data import Metric, row_set
from pipeline.laws.policy import Policy, ladder_features, stack


def _rows(units):
    """Scores rows from (model, step, params, tokens, value) tuples, one accuracy metric."""
    out = []
    for model, step, n, d, v in units:
        out.append({"suite": "t", "model": model, "family": "f", "params": n, "tokens": d, "compute_flops": 6 * n * d,
                    "step": step, "task": "t", "metric": "acc", "value": v, "stderr": 0.01, "num_fewshot": 0,
                    "chance": 0.25, "source": "test"})
    frame = pd.DataFrame(out)
    frame["step"] = frame["step"].astype("Int64")
    return frame


def test_final_rows_keep_each_runs_last_checkpoint():
    rows = _rows([("a", 1, 1e8, 1e9, .3), ("a", 2, 1e8, 2e9, .35), ("b", 1, 2e8, 1e9, .32), ("b", 3, 2e8, 3e9, .4)])
    kept = row_set(rows, Metric("t", "acc"), "final")
    assert sorted(zip(kept["model"], kept["step"])) == [("a", 2), ("b", 3)]


def test_frontier_keeps_the_best_run_of_each_budget_where_it_improves():
    # two runs at budget 6e17 (0.4 and 0.45): the better one; a later budget that is worse is not on the frontier
    rows = _rows([("a", None, 1e8, 1e9, .40), ("b", None, 2e8, 5e8, .45), ("c", None, 1e9, 1e9, .44),
                  ("d", None, 1e9, 1e10, .6)])
    kept = row_set(rows, Metric("t", "acc"), "frontier")
    assert sorted(kept["model"]) == ["b", "d"]


def test_a_preset_law_is_named_by_its_preset_in_its_messages():
    """line_frontier is loglinear through the frontier: its errors say line_frontier, the method asked for."""
    rows = _rows([("a", None, 1e8, 1e9, .40), ("b", None, 2e8, 5e8, .45), ("d", None, 1e9, 1e10, .6)])
    with pytest.raises(FitError, match="^line_frontier: 2 training points"):
        make("line_frontier", target="t:acc", n_bootstrap=0).fit(rows)
    assert make("loglinear", target="t:acc").method == "loglinear"
    assert make("sigmoid_final", target="t:acc").method == "sigmoid_final"


def test_carry_forward_predicts_the_top_rungs_mean_final_value():
    rows = _rows([("a", None, 1e8, 2e9, .30), ("b", None, 1e9, 2e10, .50), ("c", None, 1.05e9, 1.9e10, .54)])
    law = make("carry", target="t:acc", n_bootstrap=0).fit(rows)
    pred = law.predict(_rows([("z", None, 1e10, 2e11, .7)]))
    assert pred["predicted"].iloc[0] == pytest.approx(0.52)


@settings(max_examples=60, deadline=None)
@given(point=st.floats(0, 1), chance=st.sampled_from([0.0, 0.2, 0.25, 0.5]), half=st.floats(0, 50),
       noise=st.floats(0, 0.2))
def test_conformal_intervals_never_leave_floor_to_one(point, chance, half, noise):
    model = conformal.Conformal(np.zeros(len(conformal.PHI)), half, 0.9, 10)
    phi = np.zeros((1, len(conformal.PHI)))
    p = max(point, chance)
    lo, hi = model.interval(np.array([p]), np.array([chance]), np.array([noise]), phi)
    assert chance - 1e-12 <= lo[0] <= p <= hi[0] <= 1 + 1e-12  # inside [chance, 1], and around its point


def test_conformal_covers_at_the_stated_rate_where_the_scale_varies():
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.uniform(0, 2, n)  # an error that grows with a feature the model sees
    phi = np.column_stack([np.ones(n), x])
    e = rng.standard_normal(n) * 0.1 * np.exp(x)
    fit = conformal.Conformal.fit(e[: n // 2], np.zeros(n // 2), phi[: n // 2], 0.9)
    s = fit.sigma(np.zeros(n // 2), phi[n // 2:])
    inside = np.abs(e[n // 2:]) <= fit.q * s
    assert 0.88 <= inside.mean() <= 0.92
    wide, narrow = s[x[n // 2:] > 1.5].mean(), s[x[n // 2:] < 0.5].mean()
    assert wide > 3 * narrow  # it learned where the errors are larger


def test_an_unknown_disagreement_is_read_as_the_largest_the_calibration_saw():
    """Fewer than two candidates fitted: the spread is unknown (NaN), and no calibration forecast has
    one; the scale model reads it at the calibration's largest spread, not as candidates that agree."""
    rng = np.random.default_rng(1)
    n = 2000
    feats = pd.DataFrame({"distance": rng.uniform(0.3, 1.2, n), "span": 1.5, "noise": 0.01, "level": 0.5,
                          "spread": np.exp(rng.uniform(np.log(0.03), np.log(0.5), n)), "slope": 0.05,
                          "top_slope": 0.05, "curvature": 0.0, "checkpoints": 1, "runs_per_budget": 1.0,
                          "misfit": 1.0, "rung_error": 1.0})
    e = rng.standard_normal(n) * 2 * feats["spread"].to_numpy()  # errors grow with the disagreement
    fit = conformal.Conformal.fit(e, np.zeros(n), conformal.design(feats), 0.9)
    probe = feats.iloc[:3].assign(distance=0.6, spread=[np.nan, feats["spread"].max(), feats["spread"].min()])
    unknown, largest, smallest = fit.sigma(np.zeros(3), conformal.design(probe))
    assert unknown == pytest.approx(largest) and largest > 5 * smallest


def test_a_gate_with_nothing_to_learn_from_weighs_equally_whatever_the_features():
    from pipeline.laws.policy import learn_gate

    gate = learn_gate(_table().iloc[:0], ["line_final", "carry"])
    feats = _table().iloc[:2].assign(spread=[np.nan, 0.3])
    assert np.allclose(gate.weights(conformal.design(feats)), 0.5)


def test_a_local_bias_moves_the_interval_and_coverage_holds_on_both_sides():
    """Where the calibration forecasts ran low (errors mostly positive), the interval is centred
    above the point; where they did not, it stays centred; both cover at the stated rate."""
    rng = np.random.default_rng(2)
    n = 6000
    x = rng.uniform(0, 1, n)  # x > 0.5: a method that runs 0.15 link units low there
    phi = np.column_stack([np.ones(n), x])
    e = 0.1 * rng.standard_normal(n) + np.where(x > 0.5, 0.15, 0.0)
    cal, new = slice(0, n // 2), slice(n // 2, n)
    fit = conformal.Conformal.fit(e[cal], np.zeros(n // 2), phi[cal], 0.9)
    point = np.full(n // 2, 0.6)
    lo, hi = fit.interval(point, np.zeros(n // 2), np.zeros(n // 2), phi[new])
    z_lo, z_hi = conformal.to_link(lo, 0.0), conformal.to_link(hi, 0.0)
    actual_z = conformal.to_link(point, 0.0) + e[new]
    inside = (actual_z >= z_lo) & (actual_z <= z_hi)
    biased = x[new] > 0.55
    plain = x[new] < 0.45
    for part in (biased, plain):
        assert 0.86 <= inside[part].mean() <= 0.95
    centre = (z_lo + z_hi) / 2 - conformal.to_link(0.6, 0.0)
    assert np.median(centre[biased]) > 0.1 and abs(np.median(centre[plain])) < 0.03
    # a symmetric interval around the point would need to be far wider to cover the biased side
    assert np.median((z_hi - z_lo)[biased]) < 0.75 * 2 * (0.15 + 1.645 * 0.1)


def _mixture_quantile_by_scipy(w, centre, sd, p):
    from scipy.optimize import brentq
    from scipy.stats import norm

    sd = np.maximum(sd, 1e-3)  # an interval clipped to one point of the link: as narrow as the mixture takes it
    return brentq(lambda z: float(np.sum(w * norm.cdf((z - centre) / sd))) - p, -50, 50, xtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), floor=st.sampled_from([0.0, 0.25, 0.5]), k=st.integers(1, 5))
def test_the_mixture_interval_is_the_mixtures_quantiles_inside_floor_to_one(seed, floor, k):
    """Each candidate's interval read as a normal in link space; the mixture's 5% and 95% points,
    checked against scipy's root finder on the same mixture; inside [floor, 1]."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 2, k)
    sd = rng.uniform(0.05, 1.5, k)
    w = rng.dirichlet(np.ones(k))
    z = conformal.ndtri(0.95)
    lower, upper = conformal.from_link(centre - z * sd, floor), conformal.from_link(centre + z * sd, floor)
    lo, hi = conformal.mixture_interval(w[None], lower[None], upper[None], np.array([floor]), 0.9)
    for got, p in ((lo[0], 0.05), (hi[0], 0.95)):
        # the candidates' intervals pass through the link's clip (0.1% from a bound): compare there
        want = conformal.from_link(_mixture_quantile_by_scipy(w, conformal.to_link(lower, floor) / 2
                                                              + conformal.to_link(upper, floor) / 2,
                                                              (conformal.to_link(upper, floor)
                                                               - conformal.to_link(lower, floor)) / (2 * z), p), floor)
        assert got == pytest.approx(want, abs=1e-6)
    assert floor <= lo[0] <= hi[0] <= 1


def test_the_mixture_interval_is_a_lone_candidates_and_spans_candidates_that_disagree():
    one = conformal.mixture_interval(np.array([[1.0, 0.0]]), np.array([[0.40, 0.1]]), np.array([[0.50, 0.9]]),
                                     np.array([0.25]), 0.9)
    assert one[0][0] == pytest.approx(0.40, abs=1e-6) and one[1][0] == pytest.approx(0.50, abs=1e-6)
    # a candidate without an interval hands its weight to the others
    gone = conformal.mixture_interval(np.array([[0.5, 0.5]]), np.array([[0.40, np.nan]]),
                                      np.array([[0.50, np.nan]]), np.array([0.25]), 0.9)
    assert gone[0][0] == pytest.approx(0.40, abs=1e-6) and gone[1][0] == pytest.approx(0.50, abs=1e-6)
    apart = conformal.mixture_interval(np.array([[0.5, 0.5]]), np.array([[0.40, 0.60]]), np.array([[0.45, 0.65]]),
                                       np.array([0.25]), 0.9)
    assert apart[0][0] < 0.42 and apart[1][0] > 0.63  # two confident candidates 20 points apart: it spans both
    none = conformal.mixture_interval(np.array([[1.0]]), np.array([[np.nan]]), np.array([[np.nan]]),
                                      np.array([0.25]), 0.9)
    assert np.isnan(none[0][0]) and np.isnan(none[1][0])


def test_stacking_recovers_an_exact_mixture_and_stays_on_the_simplex():
    rng = np.random.default_rng(1)
    P = rng.uniform(0, 1, (200, 3))
    y = P @ np.array([0.7, 0.0, 0.3])
    w = stack(P, y)
    assert w == pytest.approx([0.7, 0.0, 0.3], abs=1e-6)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)


def test_the_gate_and_the_scale_read_a_feature_past_their_calibration_at_its_edge():
    """A ladder unlike every calibration ladder (here: more runs per budget than any) gets the
    weights and interval scale of the nearest edge of what was learned, not an extrapolation."""
    from pipeline.laws.policy import Gate

    rng = np.random.default_rng(3)
    n = 400
    phi = np.column_stack([np.ones(n), rng.uniform(0, 1, n)])
    P = np.column_stack([rng.uniform(0.3, 0.7, n), rng.uniform(0.3, 0.7, n)])
    y = np.where(phi[:, 1] > 0.5, P[:, 0], P[:, 1])  # which candidate is right depends on the feature
    gate = Gate.fit(P, y, phi, np.ones(n))
    assert gate.weights(np.array([[1.0, 25.0]])) == pytest.approx(gate.weights(np.array([[1.0, 1.0]])))
    assert gate.weights(np.array([[1.0, 1.0]]))[0, 0] > 0.6  # it did learn to trust the first candidate at high values
    # the scale: a feature of the ladder is read at its edge; how far it extrapolates is not
    full = np.zeros((n, len(conformal.PHI)))
    full[:, 0] = 1.0
    level, distance = conformal.PHI.index("level"), conformal.PHI.index("distance")
    full[:, level], full[:, distance] = phi[:, 1], rng.uniform(0, 1, n)
    e = rng.standard_normal(n) * 0.1 * np.exp(full[:, level] + full[:, distance])
    scale = conformal.Conformal.fit(e, np.zeros(n), full, 0.9)
    edge, far = full[:1].copy(), full[:1].copy()
    edge[0, level], far[0, level] = 1.0, 25.0
    assert scale.sigma(np.zeros(1), far) == pytest.approx(scale.sigma(np.zeros(1), edge))
    assert scale.local_shift_q(far)[1] == pytest.approx(scale.local_shift_q(edge)[1])
    farther = edge.copy()
    farther[0, distance] = 3.0  # three times past the calibration's distances: a wider scale
    assert scale.sigma(np.zeros(1), farther)[0] > 2 * scale.sigma(np.zeros(1), edge)[0]


def _table(n_ladders=30, seed=0):
    """A forecast table in the harness's columns: two candidates, one always 2 points better."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ladders):
        y = rng.uniform(0.4, 0.8)
        for cand, bias in (("good", 0.0), ("bad", 0.08)):
            for factor in (2.0, 4.0):
                rows.append({"ladder": f"l{i}", "group": f"g{i % 5}", "kind": "real", "factor": factor,
                             "candidate": cand, "model": "m", "params": 1e9, "tokens": 2e10, "compute_flops": 1.2e20,
                             "chance": 0.25, "actual": y, "stderr": 0.01,
                             "predicted": y + bias + rng.normal(0, 0.02), "status": "ok",
                             "distance": np.log10(factor), "span": 1.0, "n_runs": 5, "n_sizes": 5, "checkpoints": 1,
                             "noise": 0.01, "level": 0.5, "slope": 0.1, "top_slope": 0.1, "curvature": 0.0,
                             "runs_per_budget": 1.0, "floor": 0.25, "spread": 0.1,
                             "misfit": 1.0, "rung_error": 1.0})
    return pd.DataFrame(rows)


def test_policy_weights_the_candidate_that_forecasts_better_on_other_ladders():
    policy = Policy.learn(_table(), ["good", "bad"], exclude=["g0"])
    feats = _table().iloc[:4]
    weights = dict(policy.weights_for(feats))
    assert weights["good"] > 0.8


def test_auto_forecast_does_not_depend_on_the_held_out_values():
    """Permuting the held-out actual values changes no weight, point or interval."""
    from pipeline.ladders import zoo

    ladder = zoo.simulate("checkpoints_constant_lr", 3)
    rows = ladder.rows
    top = rows["params"].max()
    train, test = rows.loc[rows["params"] < top / 3], rows.loc[(rows["params"] == top) & rows["step"].isna()]
    if test.empty:
        test = rows.loc[rows["params"] == top]
    cands = ["line_final", "loglinear", "carry"]
    table = _table()
    table = pd.concat([table.assign(candidate=c) for c in cands + ["auto"]], ignore_index=True)
    policy = Policy.learn(table, cands)
    a = make("auto", target=ladder.target, policy=policy).fit(train).predict(test)
    shuffled = test.copy()
    shuffled["value"] = shuffled["value"].to_numpy()[::-1]
    b = make("auto", target=ladder.target, policy=policy).fit(train).predict(shuffled)
    for col in ("predicted", "lower", "upper"):
        assert np.allclose(a[col], b[col], equal_nan=True)
    assert (a["lower"] <= a["predicted"]).all() and (a["predicted"] <= a["upper"]).all()


def test_ladder_features_come_from_the_training_rows_alone():
    rows = _rows([("a", None, 1e8, 2e9, .30), ("b", None, 1e9, 2e10, .50)])
    f = ladder_features(rows, "t:acc", 0.25)
    assert f["n_runs"] == 2 and f["span"] == pytest.approx(2.0) and f["slope"] == pytest.approx(0.1)


def test_an_isoflop_sweeps_shape_is_read_off_each_budgets_best_run():
    # four budgets, each with its optimum (0.40 .. 0.55) and two off-optimal runs 5 points below:
    # the shape features are those of the optima alone, not of a flat, scattered ladder
    sweep, optima = [], []
    for i, (C, best) in enumerate(zip([1e18, 1e19, 1e20, 1e21], [0.40, 0.45, 0.50, 0.55])):
        for j, (scale, value) in enumerate([(0.3, best - 0.05), (1.0, best), (3.0, best - 0.05)]):
            n = scale * np.sqrt(C / 120)
            sweep.append((f"r{i}{j}", None, n, C / (6 * n), value))
        optima.append(sweep[-2])
    whole, best_only = ladder_features(_rows(sweep), "t:acc", 0.25), ladder_features(_rows(optima), "t:acc", 0.25)
    assert whole["runs_per_budget"] == 3 and best_only["runs_per_budget"] == 1
    for name in ("slope", "top_slope", "curvature", "misfit", "rung_error", "level", "noise", "span"):
        assert whole[name] == pytest.approx(best_only[name]), name
    assert whole["slope"] == pytest.approx(0.05)


def test_auto_clones_and_refits_to_the_same_forecast():
    from sklearn.base import clone

    from pipeline.ladders import zoo

    ladder = zoo.simulate("multi_budget", 1)
    rows = ladder.rows
    train, test = rows.loc[rows["params"] < rows["params"].max()], rows.loc[rows["params"] == rows["params"].max()]
    cands = ["line_final", "carry"]
    table = pd.concat([_table().assign(candidate=c) for c in cands + ["auto"]], ignore_index=True)
    law = make("auto", target=ladder.target, policy=Policy.learn(table, cands))
    twin = clone(law)
    assert twin.get_params(deep=False).keys() == law.get_params(deep=False).keys()
    a, b = law.fit(train).predict(test), twin.fit(train).predict(test)
    assert np.allclose(a["predicted"], b["predicted"]) and np.allclose(a["upper"], b["upper"])


def test_auto_offers_no_forecast_where_only_carry_could_be_fitted():
    """Every run of one compute budget (a single isoFLOP sweep): no trend law can be fitted, and no
    calibration ladder was such a one, so auto says why rather than carrying the top value with the
    interval of ladders that rise."""
    budget = 1e19
    rows = _rows([(f"m{i}", None, n, budget / (6 * n), 0.40 + 0.01 * i) for i, n in enumerate((5e7, 1e8, 2e8, 4e8))])
    table = _table()
    table = table.assign(candidate=table["candidate"].map({"good": "carry", "bad": "line_final"}))
    law = make("auto", target="t:acc", policy=Policy.learn(table, ["line_final", "carry"]))
    with pytest.raises(FitError) as exc:
        law.fit(rows)
    message = str(exc.value)
    assert "only carry could be fitted" in message and "line_final:" in message and "--method carry" in message
    assert "\n" not in message
    make("carry", target="t:acc", n_bootstrap=0).fit(rows)  # asked for by name, carry forecasts
    carry_only = table.loc[table["candidate"] == "carry"]  # a policy of carry alone carries, as calibrated
    make("auto", target="t:acc", policy=Policy.learn(carry_only, ["carry"])).fit(rows)


def test_auto_does_not_carry_the_top_value_to_a_model_inside_the_training_runs():
    """Trusting carry alone (the only candidate that was right on the calibration ladders), auto
    forecasts the top's value beyond the ladder; for a smaller model inside it, carrying the top
    value forward is no forecast, and the line's prediction stands."""
    rows = _rows([(f"m{i}", None, 1e8 * 2 ** i, 2e10, 0.30 + 0.04 * i) for i in range(6)])
    table = _table()
    table = table.assign(candidate=table["candidate"].map({"good": "carry", "bad": "line_final"}))
    law = make("auto", target="t:acc", policy=Policy.learn(table, ["line_final", "carry"])).fit(rows)
    assert dict(law.policy.weights_for(table.iloc[:1]))["carry"] > 0.9
    small, big = 1e8 * 2 ** 2.5, 1e8 * 2 ** 9
    pred = law.predict(_rows([("inside", None, small, 2e10, 0.4), ("beyond", None, big, 2e10, 0.6)]))
    line = make("line_final", target="t:acc", n_bootstrap=0).fit(rows).predict(
        _rows([("inside", None, small, 2e10, 0.4)]))["predicted"].iloc[0]
    inside, beyond = pred.set_index("model")["predicted"].loc[["inside", "beyond"]]
    assert inside == pytest.approx(line, abs=1e-6)
    assert beyond == pytest.approx(0.50, abs=0.02)  # mostly the top's value, carried
    lo, hi = pred.set_index("model").loc["inside", ["lower", "upper"]]
    assert lo <= inside <= hi and hi - lo < 0.2


def test_auto_and_a_calibrated_law_on_the_same_rows_fit_each_candidate_once():
    """A fold's (or a forecast target's) auto and calibrated laws share their candidates' fits:
    the calibrated line_final is auto's fitted candidate, not a second fit of it."""
    from pipeline.laws import calibrated
    from pipeline.ladders import zoo

    ladder = zoo.simulate("multi_budget", 1)
    rows = ladder.rows
    train = rows.loc[rows["params"] < rows["params"].max()]
    cands = ["line_final", "carry"]
    table = pd.concat([_table().assign(candidate=c) for c in cands + ["auto"]], ignore_index=True)
    policy = Policy.learn(table, cands)
    auto = make("auto", target=ladder.target, policy=policy).fit(train)
    line = calibrated("line_final", policy, target=ladder.target).fit(train)
    assert line.law_ is auto.fits_["line_final"]
    again = calibrated("line_final", policy, target=ladder.target).fit(train.copy())
    assert again.law_ is not auto.fits_["line_final"]  # other rows: fitted anew


@settings(max_examples=80, deadline=None)
@given(point=st.floats(0, 1), lo=st.floats(0, 1), hi=st.floats(0, 1), noise=st.floats(0, 0.1),
       level=st.sampled_from([0.5, 0.8, 0.9]))
def test_an_interval_holds_at_least_the_measurement_noise_around_its_point_inside_zero_one(point, lo, hi, noise, level):
    lo, hi = min(lo, point), max(hi, point)
    band_lo, band_hi = conformal.measurement_band(np.array([lo]), np.array([hi]), np.array([point]),
                                                  np.array([noise]), level)
    z = conformal.ndtri(0.5 + level / 2)
    assert 0 <= band_lo[0] <= lo and hi <= band_hi[0] <= 1  # only ever wider, never past [0, 1]
    assert band_lo[0] <= max(point - z * noise, 0) + 1e-12 and band_hi[0] >= min(point + z * noise, 1) - 1e-12


def test_the_measurement_band_reaches_below_chance_where_the_point_sits_at_it():
    """A forecast at chance (0.25) of a benchmark measured with a 1.5-point stderr: the measured value
    falls below chance half the time, and the interval reaches down to it; NaN bounds stay NaN."""
    lo, hi = conformal.measurement_band(np.array([0.25, np.nan]), np.array([0.27, np.nan]), np.array([0.25, 0.5]),
                                        np.array([0.015, 0.01]), 0.9)
    assert lo[0] == pytest.approx(0.25 - 1.6449 * 0.015, abs=1e-4)  # 0.225: below chance
    assert hi[0] == pytest.approx(0.25 + 1.6449 * 0.015, abs=1e-4)  # the band is wider than 0.27 there too
    assert np.isnan(lo[1]) and np.isnan(hi[1])
