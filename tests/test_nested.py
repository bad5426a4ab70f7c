"""Nested extrapolation (pipeline/laws/nested.py): the choice of a law's form inside its training
rows, the intervals it calibrates, and the estimator contract every law keeps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pipeline import scores
from pipeline.forecasting.backtest import run_law
from pipeline.ladders.zoo import simulate
from pipeline.laws import METHODS, make, nested
from tests.paths import ROOT, needs_shared
from tests.test_laws import TOKENS_PER_STEP, chinchilla, observational_rows

SIZES = (2e7, 5e7, 1.2e8, 3e8, 8e8, 2e9, 5e9)
STEPS = (20000, 50000, 100000, 143000)


def _sig(z):
    return 1 / (1 + np.exp(-z))


# Accuracy as a function of a loss L (nats), chance 0.25, in each link form's own shape.
LINK_DATA = {
    "log_logistic": lambda L: 0.25 + (0.70 - 0.25) * _sig(-6 * (np.log(L) - np.log(2.6))),
    "bhagia": lambda L: 0.25 + 0.75 * _sig(-5.0 * (L - 2.4)),
    "gadre": lambda L: 0.25 + 20.0 * np.exp(-1.8 * L),
    "hill": lambda L: 0.25 + 0.75 * _sig(-5 * (np.log(L) - np.log(2.2))),
}


def ladder(acc_of_loss, seed=0, se=0.002, sizes=SIZES, steps=STEPS) -> pd.DataFrame:
    """A ladder in the scores schema: Chinchilla loss (as a perplexity) and an accuracy per checkpoint."""
    rng = np.random.default_rng(seed)
    out = []
    for N in sizes:
        for step in steps:
            D = step * TOKENS_PER_STEP
            L = chinchilla(N, D)
            acc = float(np.clip(acc_of_loss(L) + rng.normal(0, se), 0, 1))
            base = dict(model=f"toy-{N:.0e}", family="toy", params=N, tokens=D, compute_flops=6 * N * D, step=step,
                        num_fewshot=0, source="synthetic", suite="toy")
            out.append({**base, "task": "toyloss", "metric": "ppl", "value": np.exp(L), "stderr": np.nan})
            out.append({**base, "task": "arc_easy", "metric": "acc", "value": acc, "stderr": se})
    return scores.validate(pd.DataFrame(out))


# -- (a) each candidate, on noisy data drawn from it, is the one chosen -----------------------------
@pytest.mark.parametrize("form", ["log_logistic", "bhagia", "gadre"])
@pytest.mark.parametrize("method", ["link", "two_step"])
def test_the_form_the_data_were_drawn_from_is_chosen(form, method):
    for seed in (0, 1):
        law = make(method, target="arc_easy:acc", loss="toyloss:ppl", form="auto", n_bootstrap=0).fit(
            ladder(LINK_DATA[form], seed))
        assert law.form_ == f"form={form}", (seed, law.inner_errors_)
        assert law.inner_errors_[law.form_] == min(law.inner_errors_.values())


def test_a_form_nested_in_the_default_is_matched_by_it():
    """The Hill curve is the log-logistic with its ceiling at 1: on its data the default's free
    ceiling finds 1 and the two extrapolate alike, so the one-standard-error rule keeps the
    default, and the forecast is as good as the true form's."""
    rows = ladder(LINK_DATA["hill"])
    law = make("link", target="arc_easy:acc", loss="toyloss:ppl", form="auto", n_bootstrap=0).fit(rows)
    errors = law.inner_errors_
    assert abs(errors["form=log_logistic"] - errors["form=hill"]) < 0.002
    assert law.params_["ceiling"] > 0.97


def direct_rows(form, seed=0, se=0.002):
    """Accuracy straight from compute: Krajewski et al.'s power law, or a sigmoid with a ceiling."""
    rng = np.random.default_rng(seed)
    logc = np.log(np.array([6 * N * 20 * N for N in np.geomspace(1e7, 1e10, 9)]))
    if form == "power":
        y = 0.25 + 0.75 * np.exp(-np.exp(4.0 - 0.09 * logc))
    else:
        y = 0.25 + (0.62 - 0.25) * _sig(1.2 * (logc - 48.0))
    rows = [dict(model=f"m{i}", family="toy", params=np.exp(c / 2) / np.sqrt(120), tokens=np.exp(c / 2) / np.sqrt(120) * 20,
                 compute_flops=np.exp(c), task="arc_easy", metric="acc", value=float(v + rng.normal(0, se)), stderr=se,
                 source="synthetic") for i, (c, v) in enumerate(zip(logc, y))]
    return scores.validate(pd.DataFrame(rows))


@pytest.mark.parametrize("form", ["power", "sigmoid"])
def test_direct_chooses_the_form_its_data_follow(form):
    law = make("direct", target="arc_easy:acc", form="auto", n_bootstrap=0).fit(direct_rows(form))
    assert law.form_ == f"form={form}", law.inner_errors_


def runs_rows(seed=0):
    """A ladder of separate runs (4 sizes x 1, 2, 5, 10x a token budget), each with its own
    schedule: mid-run checkpoints sit above the loss a finished run of that D reaches."""
    rng = np.random.default_rng(seed)
    out = []
    for N in (5e7, 1.5e8, 4e8, 1.2e9, 3e9):
        for mult in (1, 2, 5, 10):
            final = 20 * N * mult
            for frac in (0.25, 0.5, 0.75, 0.9, 1.0):
                D = frac * final
                L = chinchilla(N, D) * (1 + 0.08 * (1 - frac)) * np.exp(rng.normal(0, 0.002))  # not annealed yet
                out.append(dict(model=f"run-{N:.0e}-{mult}x", family="toy", params=N, tokens=D, compute_flops=6 * N * D,
                                step=int(frac * 1000), task="toyloss", metric="ppl", value=np.exp(L), source="synthetic"))
    return scores.validate(pd.DataFrame(out))


def test_loss_law_uses_one_point_per_run_when_runs_have_their_own_schedules():
    from pipeline.laws.loss import LossLaw

    law = LossLaw("toyloss:ppl", n_bootstrap=0).fit(runs_rows())
    assert law.chosen_["rows"] == "final", law.inner_errors_


def test_an_isoflop_sweeps_top_rung_is_its_top_budget_not_its_largest_size():
    ladder = simulate("isoflop", 3)
    rows = ladder.rows[~ladder.rows["model"].isin(ladder.truth["targets"])]  # the sweeps alone
    split = nested.inner_split(rows, ladder.target)
    top = max(ladder.truth["layout"]["budgets"])
    acc = rows[rows["metric"] == "acc"]
    on_top = set(acc.loc[np.isclose(acc["compute_flops"], top, rtol=1e-3), "model"])
    assert "top compute budget" in split.rung and len(on_top) >= 5
    assert set(split.scored["model"]) == on_top  # every run of the top sweep, the largest size among them
    assert split.train["compute_flops"].max() < top / 2
    # a ladder of one run per size keeps its largest size as the rung
    sizes = simulate("narrow_range", 3).rows
    assert "largest size" in nested.inner_split(sizes, simulate("narrow_range", 3).target).rung


# -- (b) the rows to predict never inform a fit or a choice ----------------------------------------
@pytest.mark.parametrize("method", ["two_step", "direct", "sigmoid", "link"])
def test_permuting_the_test_values_changes_no_fit_and_no_choice(method):
    rows = ladder(LINK_DATA["gadre"], se=0.004)
    train, test = rows[rows["params"] <= 8e8], rows[rows["params"] > 8e8]
    shuffled = test.copy()
    acc = shuffled["metric"] == "acc"
    shuffled.loc[acc, "value"] = np.random.default_rng(3).permutation(shuffled.loc[acc, "value"].to_numpy())
    opts = {"loss": "toyloss:ppl"} if method in ("two_step", "link") else {}
    a = run_law(method, "arc_easy:acc", {**opts, "n_bootstrap": 20}, train, test)
    b = run_law(method, "arc_easy:acc", {**opts, "n_bootstrap": 20}, train, shuffled)
    cols = ["model", "step", "predicted", "lower", "upper", "form", "inner_error"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


# -- (c) a ladder still rising past its training range is not forecast flat -------------------------
def test_a_ladder_that_keeps_rising_is_not_forecast_flat():
    truth = LINK_DATA["gadre"]
    rows = ladder(truth, se=0.003, sizes=SIZES + (1.5e10, 4e10))
    final = rows[rows["step"] == 143000]
    train, test = rows[rows["params"] <= 2e9], final[final["params"] >= 1.5e10]
    best_train = train.loc[train["metric"] == "acc", "value"].max()
    law = make("two_step", target="arc_easy:acc", loss="toyloss:ppl", form="auto", n_bootstrap=50).fit(train)
    pred = law.predict(test)
    assert (pred["actual"] > best_train + 0.1).all()  # the truth rises well past the training range
    assert (pred["predicted"] > best_train + 0.05).all(), pred[["model", "predicted", "actual"]]
    assert ((pred["lower"] <= pred["actual"]) & (pred["actual"] <= pred["upper"])).all()
    # the saturating default, fixed, would have been flat near the training maximum: the choice matters
    fixed = make("two_step", target="arc_easy:acc", loss="toyloss:ppl", form="log_logistic", n_bootstrap=0).fit(train)
    assert (fixed.predict(test)["predicted"] < pred["predicted"]).all()


def slow_rise(seed=3):
    """A two-choice task (chance 0.5) barely above chance over a four-rung ladder (a Winogrande of
    small models), a point per rung, and a 5e9 model at 0.56 (the slope carried on)."""
    sizes = SIZES[:4] + (5e9,)
    rows = ladder(lambda L: 0.5 + 0 * L, sizes=sizes, steps=(143000,), se=0.0, seed=seed)
    is_acc = rows["metric"] == "acc"
    rows.loc[is_acc, "value"] = rows.loc[is_acc, "params"].map(dict(zip(sizes, (0.50, 0.51, 0.52, 0.53, 0.56))))
    rows.loc[is_acc, "stderr"] = 0.005
    return rows


def test_a_ceiling_the_ladder_does_not_identify_is_not_a_forecast_cap():
    """The free ceiling settles on the best training accuracy; the link is then fitted as a line
    in log L, which carries the ladder's slope on."""
    rows = slow_rise()
    train, test = rows[rows["params"] < 1e9], rows[rows["params"] > 1e9]
    best_train = train.loc[train["metric"] == "acc", "value"].max()
    opts = dict(target="arc_easy:acc", loss="toyloss:ppl", form="log_logistic", chance=0.5, n_bootstrap=0)
    kept = make("link", unidentified="keep", **opts).fit(train)
    assert kept.params_["ceiling"] - best_train < 0.012  # the failure: the cap is the ladder's top
    law = make("link", **opts).fit(train)
    assert law.link_.form == "log_linear" and "ceiling not identified" in law.link_note_, law.link_note_
    assert law.form_label() == "ceiling not identified: log_linear"  # (the form was fixed, not chosen)
    truth = test.loc[test["metric"] == "acc", "value"].iloc[0]
    assert abs(law.predict(test)["predicted"].iloc[0] - truth) < abs(kept.predict(test)["predicted"].iloc[0] - truth)


def test_a_ladder_flat_at_chance_is_not_given_a_take_off():
    """Accuracies at chance over the whole ladder, one noisy point high at its top: a sigmoid puts a
    steep take-off just past the data and forecasts near its ceiling; no rise is identified, so the
    line (flat) forecasts chance."""
    sizes = SIZES[:5] + (5e9,)
    rows = ladder(lambda L: 0.5 + 0 * L, sizes=sizes, steps=(143000,), se=0.0)
    is_acc = rows["metric"] == "acc"
    rows.loc[is_acc, "value"] = rows.loc[is_acc, "params"].map(dict(zip(sizes, (0.50, 0.49, 0.505, 0.495, 0.515, 0.50))))
    rows.loc[is_acc, "stderr"] = 0.01
    train, test = rows[rows["params"] < 1e9], rows[rows["params"] > 1e9]
    opts = dict(target="arc_easy:acc", loss="toyloss:ppl", chance=0.5, n_bootstrap=0)
    law = make("link", **opts).fit(train)
    assert law.link_.why == "no rise" and "rise not identified" in law.link_note_
    assert law.form_label() == "no rise: log_linear"  # (the form was fixed, not chosen)
    assert abs(law.predict(test)["predicted"].iloc[0] - 0.50) < 0.03
    kept = make("link", unidentified="keep", **opts).fit(train)  # the failure the rule exists for
    assert kept.predict(test)["predicted"].iloc[0] > 0.6
    for form in ("log_logistic", "bhagia", "gadre"):  # every form is caught, each on its own fit
        assert make("link", form=form, **opts).fit(train).link_.form == "log_linear"


def test_a_ceiling_the_ladder_bends_towards_is_kept():
    """Where the ladder visibly saturates (the top rungs well below a ceiling they approach), the
    sigmoid stays: the rule only replaces a ceiling sitting on the data."""
    law = make("link", target="arc_easy:acc", loss="toyloss:ppl", form="log_logistic",
               n_bootstrap=0).fit(ladder(LINK_DATA["log_logistic"], seed=0))
    assert law.link_.form == "log_logistic" and law.link_note_ == "" and law.form_label() == "-"


def test_the_line_link_stays_between_its_floor_and_one():
    from pipeline.laws.curves import BoundedLinear

    x = np.linspace(0, 1, 5)
    line = BoundedLinear(x, lower=0.25)
    theta, _, ok = line.fit(x[:, None], 0.3 + 0.5 * x)
    assert ok
    np.testing.assert_allclose(line.predict(theta, np.array([[0.5]]))[0], [0.55], atol=1e-9)
    far = line.predict(theta, np.array([[-10.0], [10.0]]))[0]
    np.testing.assert_allclose(far, [0.25, 1.0])


def test_calibrated_intervals_widen_with_distance_beyond_the_training_range():
    """Where other ladders' errors grew with the distance extrapolated, a law's calibrated
    interval widens with the distance of the unit it forecasts."""
    from pipeline.laws.auto import Calibrated
    from pipeline.laws.policy import Policy

    rng = np.random.default_rng(0)
    n = 600
    d = rng.uniform(0.1, 1.5, n)
    calib = pd.DataFrame({"ladder": [f"l{i}" for i in range(n)], "group": [f"g{i % 6}" for i in range(n)], "kind": "real",
                          "factor": 2.0, "candidate": "two_step", "model": "m", "chance": 0.25, "floor": 0.25,
                          "actual": 0.6, "stderr": 0.005, "status": "ok", "distance": d, "span": 1.0, "n_runs": 6,
                          "n_sizes": 6, "checkpoints": 10, "runs_per_budget": 1.0, "noise": 0.005, "level": 0.4,
                          "slope": 0.1, "top_slope": 0.1, "curvature": 0.0, "spread": 0.1, "misfit": 1.0,
                          "rung_error": 1.0,
                          "predicted": 0.6 + rng.normal(0, 0.02, n) * d})
    policy = Policy.learn(calib, ["two_step"], weights=False)
    rows = ladder(LINK_DATA["log_logistic"], se=0.004, sizes=SIZES + (1.5e10, 4e10, 1e11))
    final = rows[rows["step"] == 143000]
    law = Calibrated(make("two_step", target="arc_easy:acc", loss="toyloss:ppl", n_bootstrap=0), policy, "two_step")
    pred = law.fit(rows[rows["params"] <= 2e9]).predict(final[final["params"] >= 5e9]).sort_values("compute_flops")
    width = (pred["upper"] - pred["lower"]).to_numpy()
    assert (np.diff(width) > 0).all(), width


def test_inner_split_holds_out_the_top_rung_or_the_top_compute():
    rows = ladder(LINK_DATA["gadre"])
    split = nested.inner_split(rows, "arc_easy:acc")
    assert set(split.test["params"]) == {5e9} and split.train["params"].max() == 2e9
    assert "largest size" in split.rung and (split.scored["distance"] > 0).all()
    assert split.scored["weight"].sum() == pytest.approx(1.0)
    two = nested.inner_splits(rows, "arc_easy:acc", folds=2)
    assert len(two) == 2 and set(two[1].test["params"]) == {2e9, 5e9}
    one_model = rows[rows["params"] == 5e9]  # one size: the top decile of compute instead
    split = nested.inner_split(pd.concat([one_model.assign(step=one_model["step"] * k, tokens=one_model["tokens"] * k,
                                                           compute_flops=one_model["compute_flops"] * k)
                                          for k in (1, 2, 3)]).drop_duplicates(["model", "step", "task", "metric"]),
                               "arc_easy:acc")
    assert split is not None and "top 10% of compute" in split.rung


def test_the_default_is_kept_unless_another_beats_it_by_the_noise():
    split = nested.InnerSplit(pd.DataFrame(), pd.DataFrame(),
                              pd.DataFrame({"model": ["a"], "step": [1], "value": [0.5], "stderr": [0.01],
                                            "weight": [1.0], "distance": [0.3]}), "r", 0.0)
    default, close, far = (nested.Score({"form": f}, e, [np.array([e])]) for f, e in
                           (("d", 0.030), ("c", 0.025), ("f", 0.010)))
    assert nested.choose([default, close], [split]) is default  # 0.5 points better: within 1 point of noise
    assert nested.choose([default, close, far], [split]) is far  # 2 points better: beyond it
    assert nested.choose([nested.Score({}, np.inf, [], "too few"), far], [split]) is None
    assert nested.plausible([default, close, far], far, [split]) == []
    assert nested.plausible([default, close], default, [split]) == [close]


# -- scikit-learn compatibility ----------------------------------------------------------------------
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"auto"}))  # auto: tests/test_policy.py
def test_every_law_clones_and_refits_to_the_same_predictions(method):
    if method.startswith("observational"):
        rows, target, opts = observational_rows(), "emerge:exact_match", {}
        train, test = rows[rows["compute_flops"] <= 3e23], rows[rows["compute_flops"] > 3e23]
    else:
        rows = ladder(LINK_DATA["gadre"], se=0.004)
        target = "arc_easy:acc"
        opts = {"loss": "toyloss:ppl"} if method in ("two_step", "link") else {}
        train, test = rows[rows["params"] <= 8e8], rows[rows["params"] > 8e8]
    law = make(method, target=target, n_bootstrap=10, **opts)
    twin = clone(law)
    assert twin.get_params(deep=True) == law.get_params(deep=True)
    assert twin.set_params(level=0.8).level == 0.8 and law.level == 0.9
    twin.set_params(level=0.9)
    a, b = law.fit(train).predict(test), twin.fit(train).predict(test)
    pd.testing.assert_frame_equal(a, b)
    assert not hasattr(clone(law), "state_")  # a clone is unfitted


# -- N as data ---------------------------------------------------------------------------------------
@needs_shared
def test_pythia_forecast_is_the_same_with_hub_ids_short_names_or_a_counts_column():
    table = scores.read(ROOT / "data/published/scores.csv")
    q = "suite == 'pythia_evals' and family in ['pythia', 'pythia-deduped'] and num_fewshot == 0"
    train = table.query(f"{q} and params <= 1.5e9 and step >= 1000 and task in ['arc_easy', 'lambada_openai']")
    test = table.query(f"{q} and params >= 6e9 and step == 143000 and task in ['arc_easy', 'lambada_openai']")
    assert train["params_non_embedding"].notna().all()

    def forecast(tr, te):
        law = make("two_step", target="arc_easy:acc", loss="lambada_openai:ppl", n_bootstrap=20).fit(tr)
        return law, law.predict(te)[["predicted", "lower", "upper"]]

    law, from_column = forecast(train, test)
    assert law.params_used_.startswith("non-embedding (table 10 of 10")
    blank = dict(params_non_embedding=np.nan)
    law, from_registry = forecast(train.assign(**blank), test.assign(**blank))
    assert law.params_used_.startswith("non-embedding (registry 10 of 10")

    def short(frame):
        return frame.assign(model=frame["model"].str.replace("EleutherAI/", "", regex=False), **blank)

    law, from_short_names = forecast(short(train), short(test))
    assert law.params_used_.startswith("non-embedding (registry 10 of 10")
    pd.testing.assert_frame_equal(from_column, from_registry)
    pd.testing.assert_frame_equal(from_column, from_short_names)


def test_a_units_interval_does_not_depend_on_what_else_is_predicted():
    rows = ladder(LINK_DATA["gadre"], se=0.004)
    train, test = rows[rows["params"] <= 8e8], rows[rows["params"] > 8e8]
    law = make("two_step", target="arc_easy:acc", loss="toyloss:ppl", n_bootstrap=30).fit(train)
    together = law.predict(test).set_index(["model", "step"])
    alone = law.predict(test[test["params"] == 5e9]).set_index(["model", "step"])
    pd.testing.assert_frame_equal(alone, together.loc[alone.index])
