"""Shape labels, forecasts, turn and emergence estimates of the trends stage (issue #5).

Synthetic curves with known shapes and noise: every label, the hard cases (a U whose turn lies
beyond the data; emergence whose rise starts at the last point), interval calibration, the CLI on
small tables, and its one-line errors.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.stages import trends as trends_stage
from pipeline.trends import analysis
from pipeline.trends import backtest as trends_backtest
from pipeline.trends import banks, shapes
from pipeline.trends.curves import LABELS, prepare
from pipeline.trends.settings import DEFAULTS
from tests.paths import ROOT

PYTHIA_N = np.array([70e6, 160e6, 410e6, 1.0e9, 1.4e9, 2.8e9, 6.9e9, 12e9])
T = np.log10(PYTHIA_N)
U = T - T.min()
SPAN = U.max()
ST = analysis.settings(trends_stage.load_config(ROOT / "params.yaml"))


def curve(y, s=0.01, chance=0.25, t=T, orient=1.0, bounded=True):
    y = np.asarray(y, dtype=float)
    s_eff, n_items = shapes.effective_stderr(y, np.full(len(y), s), bounded, 1e-3)
    return shapes.Curve(np.asarray(t, dtype=float), y, s_eff, chance, orient, bounded, n_items)


def noisy(y, s, seed):
    return np.asarray(y) + s * np.random.default_rng(seed).standard_normal(len(y))


def bnsl(u, a, b, c0, c1, d, f):
    """Caballero et al. (2022) one-break law in decades of scale."""
    return a + b * 10 ** (-c0 * u - c1 * f * np.log10(1 + 10 ** ((u - d) / f)))


SHAPES = {
    "positive": (lambda: 0.3 + 0.12 * U, 0.25),
    "inverse": (lambda: 0.8 - 0.1 * U, 0.5),
    "flat": (lambda: np.full(8, 0.42), 0.25),
    "emergent": (lambda: 0.25 + 0.5 * banks.sigmoid((U - 1.6) / 0.12), 0.25),
    "u_shaped": (lambda: 0.3 + 0.2 * (U - 1.1) ** 2, 0.25),
    "inverted_u": (lambda: 0.7 - 0.2 * (U - 1.1) ** 2, 0.25),
    # scatter far beyond the stated errors and no form beats a constant
    "noisy": (lambda: 0.5 + 0.08 * np.array([1, -1, 1, -1, -1, 1, -1, 1]), 0.5),
}


@pytest.mark.parametrize("label", sorted(SHAPES))
def test_every_label_on_synthetic_curves(label):
    make, chance = SHAPES[label]
    got = [shapes.classify(curve(noisy(make(), 0.01, seed), chance=chance), ST).label for seed in range(5)]
    assert got == [label] * 5, got


def test_flat_at_chance_says_so_and_trend_evidence_is_reported():
    an = shapes.classify(curve(noisy(np.full(8, 0.25), 0.01, 3)), ST)
    assert an.label == "flat" and "at chance" in an.evidence and "dBIC(trend-vs-" in an.evidence
    an = shapes.classify(curve(noisy(0.8 - 0.1 * U, 0.01, 0), chance=0.5), ST)
    import re
    slope = float(re.search(r"slope=([-+0-9.e]+)±", an.evidence).group(1))
    assert "dBIC(break-vs-mono)=" in an.evidence and "(t=-" in an.evidence and abs(slope + 0.1) < 0.01


def test_null_curves_rarely_get_a_trend():
    """False-trend rate under pure noise at chance (the thresholds' size)."""
    labels = [shapes.classify(curve(noisy(np.full(8, 0.25), 0.01, 100 + i)), ST).label for i in range(60)]
    assert sum(lab not in ("flat", "noisy") for lab in labels) <= 3


def test_hard_case_emergence_rising_only_at_the_last_point():
    y = np.r_[np.full(7, 0.25), 0.45]
    for seed in range(5):
        an = shapes.classify(curve(noisy(y, 0.01, seed)), ST)
        assert an.label == "emergent", an.evidence
        assert "(7 pts)" in an.evidence or "(6 pts)" in an.evidence


def test_hard_case_u_whose_turn_lies_beyond_the_data():
    """Declining data whose one-break law turns up 0.2 decades after the largest model: not a
    U in the data (label inverse), and the turn test must not rule a turn out."""
    truth = bnsl(U, 0.2, 0.6, 0.4, -2.0, SPAN + 0.2, 0.25)
    assert np.all(np.diff(truth) < 0)  # the data only decline
    verdicts = []
    for seed in range(5):
        c = curve(noisy(truth, 0.003, seed), s=0.003, chance=0.5)
        an = shapes.classify(c, ST)
        assert an.label == "inverse", an.evidence
        tr = shapes.turn_test(c, an, ST, 2.0, 3.84)
        verdicts.append(tr.verdict)
        if tr.verdict in ("yes", "possible"):
            assert tr.t > T.max() - 0.3
    assert verdicts.count("no") <= 1, verdicts


def test_a_turn_seen_in_the_data_is_u_shaped_and_the_turn_is_located():
    truth = bnsl(U, 0.2, 0.6, 0.4, -2.0, SPAN - 0.8, 0.25)
    an = shapes.classify(curve(noisy(truth, 0.005, 1), s=0.005, chance=0.5), ST)
    assert an.label == "u_shaped"
    grid = np.linspace(0, SPAN, 500)
    true_turn = grid[np.argmin(bnsl(grid, 0.2, 0.6, 0.4, -2.0, SPAN - 0.8, 0.25))]
    assert abs((an.turn_t - T.min()) - true_turn) < 0.3


def test_loss_curves_are_fitted_in_log_space_and_lower_is_better():
    ppl = 150 * (PYTHIA_N / PYTHIA_N[0]) ** -0.5 + 3
    pts = pd.DataFrame({"params": PYTHIA_N, "compute_flops": 6 * PYTHIA_N * 3e11, "model": [f"m{i}" for i in range(8)],
                        "value": ppl, "stderr": 0.02 * ppl})
    prep = prepare("lambada_openai", "ppl", pts, "compute_flops", trends_stage.load_config(ROOT / "params.yaml"))
    assert prep.curve.log and prep.curve.orient == -1
    an = shapes.classify(prep.curve, ST)
    assert an.label == "positive" and "ln(value)" in prep.note
    point, lo, hi, _ = shapes.forecast(prep.curve, an, np.array([prep.curve.t.max() + 1]), ST, 100, 0)
    truth = 150 * (10 * PYTHIA_N[-1] / PYTHIA_N[0]) ** -0.5 + 3
    assert 0 < lo[0] <= point[0] <= hi[0] < ppl[-1] and abs(np.log(point[0] / truth)) < 0.3


def test_intervals_cover_held_out_points_on_synthetic_curves():
    """Fit the 5 smallest scales, predict the 3 largest: 90% intervals should cover ~90%."""
    hits = []
    for seed in range(25):
        truth = 0.3 + 0.08 * U + 0.02 * U ** 2
        y = noisy(truth, 0.012, seed)
        c = curve(y[:5], s=0.012, t=T[:5])
        an = shapes.classify(c, ST)
        _, lo, hi, _ = shapes.forecast(c, an, T[5:], ST, 200, seed)
        hits += list((lo <= y[5:]) & (y[5:] <= hi))
    assert np.mean(hits) >= 0.8, np.mean(hits)


def test_too_few_scales_and_missing_stderr_are_labelled_never_guessed():
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    base = pd.DataFrame({"params": PYTHIA_N, "compute_flops": 6 * PYTHIA_N * 3e11,
                         "model": [f"m{i}" for i in range(8)], "value": 0.3 + 0.1 * U, "stderr": 0.01})
    p = prepare("piqa", "acc", base.iloc[:3], "compute_flops", cfg)
    assert p.curve is None and p.reason == "insufficient: <4 scales (3)"
    p = prepare("piqa", "acc", base.assign(stderr=np.nan), "compute_flops", cfg)
    assert p.reason == "insufficient: no stderr"
    p = prepare("piqa", "acc", base.assign(stderr=[0.01] * 6 + [np.nan] * 2), "compute_flops", cfg)
    assert p.reason == "insufficient: no stderr for 2 of 8 points"
    p = prepare("mystery_task", "acc", base, "compute_flops", cfg)
    assert p.curve is not None and p.curve.chance is None and "chance unknown" in p.note


def test_defaults_mirror_params_yaml():
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["trends"]
    defaults = DEFAULTS
    for key, val in section.items():
        if key == "backtest":
            continue
        if isinstance(val, dict):
            for k2, v2 in val.items():
                assert defaults[key][k2] == v2, (key, k2)
        else:
            assert defaults[key] == val, key


# ----------------------------------------------------------------------------- tables and CLI
def table(families=("fa", "fb"), n_sizes=8, stderr=True, seed=0):
    """A small scores table: per family, a rising task, a declining one, one at chance, and a
    task loss (nll) beside the rising one, over n_sizes sizes, each at two checkpoints."""
    rng = np.random.default_rng(seed)
    rows = []
    for fi, fam in enumerate(families):
        for i, n in enumerate(PYTHIA_N[:n_sizes]):
            u = np.log10(n / PYTHIA_N[0])
            for step, frac in ((71500, 0.5), (143000, 1.0)):
                tok = 3e11 * frac
                vals = {
                    ("piqa", "acc"): 0.55 + 0.08 * u * frac + 0.02 * fi,
                    ("truthfulqa_mc2", "acc"): 0.47 - 0.06 * u,
                    ("logiqa", "acc"): 0.25,
                    ("piqa", "nll"): 2.0 * 10 ** (-0.15 * u * frac),
                }
                for (task, metric), v in vals.items():
                    se = 0.01 if metric == "acc" else 0.01 * v
                    rows.append(dict(suite="syn", model=f"{fam}-{n:.2e}", family=fam, params=n, tokens=tok,
                                     compute_flops=6 * n * tok, step=step, task=task, metric=metric,
                                     value=v + se * rng.standard_normal(), stderr=se if stderr else np.nan,
                                     num_fewshot=0, source="synthetic"))
    return pd.DataFrame(rows)


def run_cli(tmp_path, df, *extra):
    path = tmp_path / "scores.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "trends.csv"
    rc = trends_stage.main(["--scores", str(path), "--out", str(out), "--params", str(ROOT / "params.yaml"), *extra])
    return rc, out


def test_cli_labels_every_curve_and_writes_forecasts(tmp_path):
    rc, out = run_cli(tmp_path, table())
    assert rc == 0
    res = pd.read_csv(out)
    assert {"family", "task", "metric", "label", "evidence", "n_points", "pred_2x", "lo_10x", "hi_100x",
            "cross_compute", "turn"} <= set(res.columns)
    lab = res.set_index(["family", "task", "metric"])["label"]
    assert lab[("fa", "piqa", "acc")] == "positive"
    assert lab[("fa", "truthfulqa_mc2", "acc")] == "inverse"
    assert lab[("fa", "logiqa", "acc")] == "flat"
    assert lab[("fa", "piqa", "nll")] == "positive"
    row = res[(res.family == "fa") & (res.task == "piqa") & (res.metric == "acc")].iloc[0]
    assert row.lo_2x <= row.pred_2x <= row.hi_2x and row.pred_2x > 0.7
    inv = res[(res.task == "truthfulqa_mc2")].iloc[0]
    assert inv.turn in ("yes", "possible", "no")
    ck = pd.read_csv(tmp_path / "trends_checkpoints.csv")
    assert ck.empty or set(ck.columns) >= {"model", "label", "evidence", "n_points"}
    assert (tmp_path / "trends_emergence.csv").exists()


def test_cli_train_query_labels_small_models_and_scores_the_rest(tmp_path):
    rc, out = run_cli(tmp_path, table(), "--train", "params <= 1.5e9", "--x", "params")
    assert rc == 0
    res = pd.read_csv(out)
    assert (res["n_points"] == 5).all() and (res["x"] == "params").all()
    ho = pd.read_csv(tmp_path / "trends_heldout.csv")
    assert set(ho["model"].str.split("-").str[-1]) == {"2.80e+09", "6.90e+09", "1.20e+10"}
    assert ho["pred"].notna().all() and ho["hit"].mean() >= 0.6
    assert (ho["label_small"] == ho["label_all"]).mean() >= 0.5


def test_cli_output_is_byte_identical_across_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    df = table()
    for d in (a, b):
        assert run_cli(d, df)[0] == 0
    for name in ("trends.csv", "trends_emergence.csv", "trends_checkpoints.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_no_stderr_and_few_scales_reach_the_table_with_their_reason(tmp_path):
    df = pd.concat([table(families=("fa",), stderr=False), table(families=("fb",), n_sizes=3)])
    rc, out = run_cli(tmp_path, df)
    assert rc == 0
    res = pd.read_csv(out).set_index(["family", "task", "metric"])
    assert res.loc[("fa", "piqa", "acc"), "label"] == "insufficient: no stderr"
    assert res.loc[("fb", "piqa", "acc"), "label"] == "insufficient: <4 scales (3)"
    assert pd.isna(res.loc[("fa", "piqa", "acc"), "pred_2x"])


def test_backtest_metrics_from_params_splits(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["trends"]["backtest"] = [{"name": "small", "universe": "family == 'fa'", "train": "params <= 1.5e9"}]
    ppath = tmp_path / "params.yaml"
    ppath.write_text(yaml.safe_dump(params))
    path = tmp_path / "scores.csv"
    table().to_csv(path, index=False)
    rc = trends_stage.main(["--scores", str(path), "--out", str(tmp_path / "t.csv"), "--params", str(ppath),
                      "--backtest-out", str(tmp_path / "bt.csv"), "--metrics-out", str(tmp_path / "m.json"),
                      "--markdown-out", str(tmp_path / "t.md")])
    assert rc == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["n"] == 12 and 0 <= m["coverage"] <= 1 and m["label_agreement"] is not None
    assert all(not isinstance(v, (dict, list)) for v in m.values()), "DVC metrics are flat"
    summary = pd.read_csv(tmp_path / "trends_backtest_summary.csv")
    assert summary["split"].tolist() == ["ALL", "small"] and summary["heldout_points"].tolist() == [12, 12]
    bt = pd.read_csv(tmp_path / "bt.csv")
    acc = bt[bt["pred"].notna() & (bt["metric"] == "acc")]
    assert m["mae"] == pytest.approx(100 * (acc["pred"] - acc["actual"]).abs().mean(), abs=1e-3), "accuracy points"
    assert "## Trends" in (tmp_path / "t.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--train", "params <<< 3"], "--train query 'params <<< 3': not a valid query (invalid syntax)"),
    (["--train", "params > 1e15"], "selects no rows"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    rc, _ = run_cli(tmp_path, table(), *args)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_cli_missing_column_is_one_line(tmp_path, capsys):
    rc, _ = run_cli(tmp_path, table().drop(columns=["value"]))
    err = capsys.readouterr().err
    assert rc == 2 and "missing required column" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- emergence routes
def emergence_table(seed=0):
    """Families whose task accuracy is a sigmoid of a task loss that falls with compute; family
    'late' is still at chance (0.25) at its largest model, the others have crossed."""
    rng = np.random.default_rng(seed)
    rows = []
    for fam, shift in (("early", 0.0), ("mid", 0.5), ("late", 1.2)):
        for n in np.logspace(8, 10, 6):
            c = 6 * n * 2e11
            loss = 3.0 * (c / 1e20) ** -0.08 * 10 ** (0.1 * shift)
            acc = 0.25 + 0.75 * banks.sigmoid(-12 * (loss - 1.9))
            for metric, v, se in (("acc", acc, 0.01), ("nll", loss, 0.01)):
                rows.append(dict(suite="syn", model=f"{fam}-{n:.2e}", family=fam, params=n, tokens=2e11,
                                 compute_flops=c, step=np.nan, task="mmlu", metric=metric,
                                 value=v + se * rng.standard_normal(), stderr=se, num_fewshot=0, source="syn"))
    return pd.DataFrame(rows)


def test_loss_route_finds_where_an_at_chance_family_takes_off():
    df = emergence_table()
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    curves, em = analysis.analyse_table(df, cfg)
    late = curves[(curves.family == "late") & (curves.metric == "acc")].iloc[0]
    assert late["cross_method"] == "loss"
    # truth: acc = 0.35 where sigmoid(-12 (L - 1.9)) = 0.1/0.75
    target_loss = 1.9 - np.log(0.1 / 0.75 / (1 - 0.1 / 0.75)) / 12
    c_true = 1e20 * (target_loss / (3.0 * 10 ** 0.12)) ** (-1 / 0.08)
    assert late["cross_compute_lo"] <= c_true <= late["cross_compute_hi"]
    assert abs(np.log10(late["cross_compute"] / c_true)) < 0.3
    assert late["cross_params"] == pytest.approx(late["cross_compute"] / (6 * 2e11), rel=1e-3)


def pc_table(seed=0):
    """Four families whose benchmark scores (linearly) and an emergent task (sigmoid) follow one
    latent capability that is linear in log compute with family-specific efficiency; 'late'
    stays near chance on the emergent task."""
    rng = np.random.default_rng(seed)
    rows = []
    for fam, eff in (("a", 0.0), ("b", -0.3), ("c", -0.6), ("late", -1.5)):
        for i, n in enumerate(np.logspace(8.3, 10.3, 6)):
            c = 6 * n * 2e11
            cap = 0.8 * (np.log10(c) - 21) + eff  # latent capability
            model = f"{fam}-{i}"
            # benchmarks linear in the capability, as the observational scaling law assumes
            bench = {"b1": 0.45 + 0.08 * cap, "b2": 0.6 + 0.05 * cap, "b3": 0.4 + 0.1 * cap, "b4": 0.3 + 0.06 * cap}
            for task, v in bench.items():
                rows.append(dict(suite="pcs", model=model, family=fam, params=n, tokens=2e11, compute_flops=c,
                                 step=np.nan, task=task, metric="acc", value=v + 0.005 * rng.standard_normal(),
                                 stderr=np.nan, num_fewshot=0, source="syn"))
            emerg = banks.sigmoid(3 * (cap - 1.0))
            rows.append(dict(suite="emer", model=model, family=fam, params=n, tokens=2e11, compute_flops=c,
                             step=np.nan, task="arithmetic_2da", metric="acc",
                             value=float(np.clip(emerg + 0.005 * rng.standard_normal(), 0, 1)),
                             stderr=np.nan, num_fewshot=2, source="syn"))
    return pd.DataFrame(rows)


def test_pc_route_forecasts_take_off_of_an_at_chance_family_and_backtests_it():
    df = pc_table()
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    cfg["emergence"].update(pc_suite="pcs", pc_exclude=[], n_pcs=2, report_suites=["emer"])
    curves, em = analysis.analyse_table(df, cfg)
    late = curves[(curves.family == "late") & (curves.suite == "emer")].iloc[0]
    assert late["label"] == "insufficient: no stderr" and late["cross_method"] == "pc"
    # truth: emergent accuracy 0.1 where 3 (cap - 1) = logit(0.1)
    cap = 1.0 + np.log(0.1 / 0.9) / 3
    c_true = 10 ** ((cap + 1.5) / 0.8 + 21)
    assert late["cross_compute_lo"] <= c_true <= late["cross_compute_hi"]
    assert abs(np.log10(late["cross_compute"] / c_true)) < 0.3
    cfg["emergence"].update(backtest_suites=["emer"])
    eb = trends_backtest.crossing_backtest(df, cfg)
    pc = eb[eb["method"] == "pc"]
    assert len(pc) >= 1 and pc["hit"].astype(bool).mean() >= 0.5


def test_crossings_are_cached_per_shot_setting():
    """Two shot settings of one task are different data: each gets its own link and crossing
    (they were cached by suite, task and metric, so the 5-shot curve got the 0-shot crossing)."""
    df = pc_table()
    emer = df[df["suite"] == "emer"]
    five = emer.assign(num_fewshot=5, value=np.clip(emer["value"] + 0.04, 0, 1))  # 5-shot takes off earlier
    df = pd.concat([df.assign(num_fewshot=df["num_fewshot"].where(df["suite"] != "emer", 0)), five],
                   ignore_index=True)
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    cfg["emergence"].update(pc_suite="pcs", pc_exclude=[], n_pcs=2, report_suites=["emer"])
    curves, em = analysis.analyse_table(df, cfg)
    late = curves[(curves.family == "late") & (curves.suite == "emer")].set_index("num_fewshot")
    assert set(late.index) == {0, 5} and (late["cross_method"] == "pc").all()
    assert late.loc[5, "cross_compute"] < late.loc[0, "cross_compute"]  # earlier, not the same number
    pc = em[(em.method == "pc") & (em.suite == "emer")].pivot_table(index="family", columns="num_fewshot",
                                                                   values="cross_compute")
    assert (pc[5] != pc[0]).all(), pc


def test_chance_from_the_column_the_option_and_the_built_in_table(tmp_path, capsys):
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    pts = pd.DataFrame({"params": PYTHIA_N, "compute_flops": 6 * PYTHIA_N * 3e11, "model": [f"m{i}" for i in range(8)],
                        "task": "my_task", "metric": "acc", "value": np.r_[np.full(6, 0.2), 0.4, 0.6],
                        "stderr": 0.01})
    p = prepare("my_task", "acc", pts, "compute_flops", cfg)
    assert p.curve.chance is None and "--chance TASK=LEVEL" in p.note
    p = prepare("my_task", "acc", pts.assign(chance=0.2), "compute_flops", cfg)
    assert p.curve.chance == 0.2 and "chance unknown" not in p.note
    p = prepare("my_task", "exact_match", pts.assign(metric="exact_match"), "compute_flops", cfg)
    assert p.curve.chance == 0.0  # free-form answers: chance 0
    df = table(families=("fa",)).query("task == 'logiqa' and metric == 'acc'").assign(task="my_task")
    rc, out = run_cli(tmp_path, df, "--chance", "my_task=0.25")
    assert rc == 0 and "chance unknown" not in pd.read_csv(out)["evidence"].iloc[0]
    assert "at chance" in pd.read_csv(out)["evidence"].iloc[0]
    rc, _ = run_cli(tmp_path, df, "--chance", "my_task=2")
    err = capsys.readouterr().err
    assert rc == 2 and "--chance 'my_task=2'" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- forecasts that hold up
def curve_rows(C, values, stderr, task="arc_easy", metric="acc"):
    return pd.DataFrame({"compute_flops": C, "params": np.asarray(C) / 6 / 2e10,
                         "model": [f"m{i:02d}" for i in range(len(C))], "value": values, "stderr": stderr,
                         "task": task, "metric": metric})


def analysed(frames, task="arc_easy", metric="acc", levels=None):
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    preps = [prepare(task, metric, f, "compute_flops", cfg) for f in frames]
    return analysis.analyse_curves(preps, cfg, analysis.settings(cfg), levels=levels)


def horizons(res) -> np.ndarray:
    return np.array([h[1:] for h in res["horizons"]])  # rows 2x, 10x, 100x: pred, lo, hi


def test_a_rising_curve_is_not_forecast_flat_at_its_last_point():
    """A free-form task (chance 0) at 0 for small models, rising 0.10 -> 0.39 over its last decade:
    it was forecast 0.386 at 2x, 10x and 100x by a sigmoid whose ceiling sat at the last point."""
    C = np.logspace(19, 22, 10)
    y = np.array([0.0, 0.0, 0.002, 0.01, 0.03, 0.06, 0.10, 0.17, 0.27, 0.39])
    se = np.sqrt(np.clip(y, 0.01, 1) * (1 - y) / 3000)
    for seed in range(3):
        v = np.clip(y + se * np.random.default_rng(seed).standard_normal(len(y)), 0, 1)
        res = analysed([curve_rows(C, v, se, task="triviaqa", metric="exact_match")], "triviaqa", "exact_match")[0]
        h = horizons(res)
        assert res["label"] in ("positive", "emergent") and res["forecast_form"] in ("power", "linear")
        assert h[0, 0] > v[-1] + 0.03 and h[1, 0] > h[0, 0] + 0.05 and h[2, 0] >= h[1, 0], h
        assert (h[:, 1] <= h[:, 0]).all() and (h[:, 0] <= h[:, 2]).all()


def test_a_curves_interval_does_not_depend_on_the_curves_beside_it():
    """The stage forecasts every curve of the table at once, the CLI a user's few: one curve's
    interval must be the same either way (each curve draws from its own generator)."""
    C = np.logspace(19, 22, 8)
    rising = 0.3 + 0.05 * np.log10(C / 1e19)
    se = np.full(len(C), 0.01)
    noisy = [rising + se * np.random.default_rng(s).standard_normal(len(C)) for s in (1, 2)]
    alone = horizons(analysed([curve_rows(C, noisy[0], se)])[0])
    beside = [horizons(r) for r in analysed([curve_rows(C, noisy[1], se), curve_rows(C, noisy[0], se)])]
    np.testing.assert_array_equal(alone, beside[1])
    assert not np.array_equal(beside[0], beside[1])


def emergent_law(C):
    """At chance (0.25) until 1e21 FLOPs, then Krajewski et al.'s law: (y - 0.25)/0.75 = exp(-(C/5e21)^-1)."""
    return 0.25 + 0.75 * np.where(C > 1e21, np.exp(-((C / 5e21) ** -1.0)), 0.0)


def test_a_synthetic_emergent_curve_is_labelled_emergent_and_its_10x_forecast_covers_the_law():
    C = 10 ** np.arange(19.0, 21.4, 0.15)
    C = np.r_[C, 3e21]  # fitted up to 3e21
    y = emergent_law(C)
    se = np.sqrt(y * (1 - y) / 10000)
    frames = [curve_rows(C, y + se * np.random.default_rng(s).standard_normal(len(C)), se) for s in range(10)]
    results = analysed(frames, levels=[(0.35, 1.0)] * len(frames))
    truth = emergent_law(np.array([3e22]))[0]  # 10x
    h10 = np.array([horizons(r)[1] for r in results])
    assert all(r["label"] == "emergent" for r in results), [r["evidence"] for r in results]
    hits = (h10[:, 1] <= truth) & (truth <= h10[:, 2])
    assert hits.sum() >= 8, (truth, h10)
    assert np.median(h10[:, 2] - h10[:, 1]) < 0.6, h10  # an interval that says something
    assert np.median(np.abs(h10[:, 0] - truth)) < 0.1, h10
    assert all(np.isfinite(r["cross_fit"][0]) for r in results)  # it crossed chance + margin in its data


def test_a_smooth_sigmoid_that_never_sat_at_chance_is_not_emergent():
    # the lower tail of a smooth sigmoid on its 4 smallest points: it used to come out emergent
    tail = 0.25 + 0.5 * banks.sigmoid((U[:4] - 1.9) / 0.4)
    # a sigmoid whose floor is above chance, over all 8 sizes
    high = 0.35 + 0.45 * banks.sigmoid((U - 1.3) / 0.3)
    for seed in range(5):
        a = shapes.classify(curve(noisy(tail, 0.01, seed), t=T[:4]), ST)
        b = shapes.classify(curve(noisy(high, 0.01, seed)), ST)
        assert a.label != "emergent" and b.label == "positive", (a.evidence, b.evidence)
        assert "not emergent" in a.evidence or "at chance up to" not in a.evidence


def test_labels_agree_with_their_evidence_on_synthetic_and_committed_curves():
    rows = []
    for label, (make, chance) in SHAPES.items():
        for seed in range(3):
            c = curve(noisy(make(), 0.01, seed), chance=chance)
            an = shapes.classify(c, ST)
            rows.append({"label": an.label, "evidence": an.evidence, "form": an.form})
    rows += pd.read_csv(ROOT / "reports/trends.csv").to_dict("records")
    bad = [(r.get("task"), r.get("family"), analysis.contradictions(r)) for r in rows if analysis.contradictions(r)]
    assert not bad, bad[:5]
    # and the rule catches each contradiction the issue reported
    assert analysis.contradictions({"label": "emergent", "form": "linear", "evidence": "at chance up to x=1 (2 pts)"})
    assert analysis.contradictions({"label": "emergent", "form": "power", "cross_compute": np.inf,
                                  "evidence": "at chance up to x=1 (2 pts)"})
    assert analysis.contradictions({"label": "positive", "pred_100x": 1.81465, "lo_100x": 2.03848, "hi_100x": 4.27659})


def test_committed_crossings_differ_between_shot_settings_where_their_data_differ():
    """pythia-deduped logiqa, winogrande and wsc had identical 0- and 5-shot crossings."""
    em = pd.read_csv(ROOT / "reports/trends_emergence.csv")
    em = em[em["num_fewshot"].isin([0, 5])].assign(cross=em["cross_compute"].astype(str))  # 'nan': no crossing
    pairs = em.pivot_table(index=["suite", "family", "task", "metric", "method"], columns="num_fewshot",
                           values="cross", aggfunc="first").dropna()
    pairs = pairs[(pairs[0.0] != "nan") | (pairs[5.0] != "nan")]  # a crossing in at least one setting
    assert len(pairs) >= 5 and (pairs[0.0] != pairs[5.0]).all(), pairs[pairs[0.0] == pairs[5.0]]


def crossing_table(seed=0):
    """Two families whose accuracy (chance 0.25) rises smoothly through 0.35 inside the data, and
    one model that takes off over its checkpoints."""
    rng = np.random.default_rng(seed)
    rows = []
    for fam, shift in (("fa", 0.0), ("fb", 0.3)):
        for i, n in enumerate(np.logspace(8, 10.5, 9)):
            c = 6 * n * 2e11
            v = 0.25 + 0.6 * float(banks.sigmoid((np.log10(c) - 22.2 - shift) / 0.45))
            rows.append(dict(suite="syn", model=f"{fam}-{i}", family=fam, params=n, tokens=2e11, compute_flops=c,
                             step=np.nan, task="arc_easy", metric="acc", value=v + 0.004 * rng.standard_normal(),
                             stderr=0.004, num_fewshot=0, source="syn"))
    for step in range(1000, 20001, 1000):
        c = 6 * 1e10 * step * 2e6
        v = float(emergent_law(np.array([c * 4]))[0])
        rows.append(dict(suite="syn", model="one", family="fc", params=1e10, tokens=step * 2e6, compute_flops=c,
                         step=step, task="arc_easy", metric="acc", value=v + 0.004 * rng.standard_normal(),
                         stderr=0.004, num_fewshot=0, source="syn"))
    return pd.DataFrame(rows)


def test_crossing_backtest_scores_the_crossing_point_in_decades():
    cfg = trends_stage.load_config(ROOT / "params.yaml")
    cfg["emergence"].update(backtest_suites=["syn"])
    eb = trends_backtest.crossing_backtest(crossing_table(), cfg)
    prim = eb[eb["primary"]]
    assert set(prim["kind"]) == {"size", "step"} and (prim["side"] == "up").all()
    assert set(eb["method"]) == {"fit", "loss", "pc"} and prim["method"].eq("fit").all()
    assert (prim["points_before"] >= 3).all() and np.isfinite(prim["log10_error"]).all()
    assert prim["log10_error"].abs().median() < 0.3 and prim["hit"].mean() >= 0.5, prim
    summary = trends_backtest.crossing_summary(eb)
    top = summary.iloc[0]
    assert top["cases"] == "ALL" and top["n"] == len(prim) and top["forecast"] == len(prim)
    assert trends_backtest.crossing_metrics(summary)["cases"] == len(prim)


def test_label_confusion_counts_every_label_against_every_label():
    bt = pd.DataFrame({"split": ["a", "a", "a", "b", "b"], "suite": "s", "family": list("xyzxy"), "task": "t",
                       "metric": "acc", "num_fewshot": 0, "model": "m",
                       "label_small": ["flat", "emergent", "insufficient: no stderr", "positive", "positive"],
                       "label_all": ["positive", "emergent", "flat", "positive", "noisy"]})
    cf = trends_backtest.confusion(bt)
    labels = list(LABELS) + ["insufficient"]
    assert list(cf.columns) == ["split", "label_small", *labels, "curves", "agreement"]
    allrows = cf[cf["split"] == "ALL"].set_index("label_small")
    assert list(allrows.index) == labels and allrows["curves"].sum() == 5
    assert allrows.loc["flat", "positive"] == 1 and allrows.loc["insufficient", "flat"] == 1
    assert allrows.loc["positive", "agreement"] == 0.5 and allrows.loc["emergent", "agreement"] == 1.0
    assert set(cf["split"]) == {"ALL", "a", "b"}
