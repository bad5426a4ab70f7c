"""The skill law (pipeline/laws/skills.py): recovery of known family shifts from synthetic
benchmarks, a held-out family predicted from its smallest model, the structured Gauss-Newton
step against the dense one, the keep_smallest split and the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import FitError
from pipeline.forecasting import backtest
from pipeline.laws import make
from pipeline.laws.optim import damped_solve
from pipeline.laws.skill_model import Objective, start
from pipeline.stages import backtest as backtest_stage

# Two skills per model: theta = alpha_family + G^T (n, d, n d) in decades of N and D (centred
# below), read out by six benchmarks through chance-floored sigmoids.
G = np.array([[0.9, 0.3], [0.7, 1.0], [0.0, 0.0]])  # per decade of N, of D, of N x D; one column per skill
ALPHA = {"fa": (0.0, 0.0), "fb": (0.6, -0.4), "fc": (-0.5, 0.5), "fd": (0.4, 0.3)}
RECIPES = {"fa": lambda n: 20 * n, "fb": lambda n: 3e11 + 0 * n, "fc": lambda n: 100 * n, "fd": lambda n: 1e11 + 0 * n}
BENCH = {  # name: (chance, loadings, intercept)
    "b1": (0.25, (1.0, 0.0), 0.0), "b2": (0.25, (0.0, 1.0), -0.3), "b3": (0.5, (0.7, 0.5), 0.2),
    "b4": (0.25, (0.4, 0.9), -0.5), "b5": (0.0, (1.2, 0.2), -1.0), "b6": (0.25, (0.5, 0.5), 0.4)}
SIZES = (5e7, 1.5e8, 5e8, 1.5e9, 5e9)
N_ITEMS = 3000


def skill_rows(seed=0, noise=True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for fam, (a1, a2) in ALPHA.items():
        for N in SIZES:
            D = float(RECIPES[fam](N))
            z = np.array([np.log10(N) - 8.7, np.log10(D) - 10.7])
            z = np.append(z, z[0] * z[1])
            theta = np.array([a1, a2]) + z @ G
            base = {"suite": "toy", "model": f"{fam}-{N:.1e}".replace(".0e", "e"), "family": fam, "params": N, "tokens": D,
                    "compute_flops": 6 * N * D, "step": pd.NA, "num_fewshot": 0, "source": "synthetic"}
            for task, (chance, lam, b) in BENCH.items():
                p = chance + (1 - chance) / (1 + np.exp(-(np.dot(lam, theta) + b)))
                se = np.sqrt(p * (1 - p) / N_ITEMS)
                value = float(np.clip(p + (rng.normal(0, se) if noise else 0.0), 0, 1))
                rows.append({**base, "task": task, "metric": "acc", "value": value, "stderr": se, "chance": chance})
    df = pd.DataFrame(rows)
    df["step"] = df["step"].astype("Int64")
    df["num_fewshot"] = df["num_fewshot"].astype("Int64")
    return df


def test_known_family_shifts_are_recovered_within_their_intervals():
    rows = skill_rows()
    law = make("skills", target="b1:acc", n_bootstrap=200, level=0.95).fit(rows)
    assert law.n_skills_ == 2  # chosen on the inner leave-one-family-out folds
    table = law.family_table("fa", 1e9, 2e10)
    # the fit measures skills in logits of its anchor benchmarks: truth in that gauge = A @ shift
    A = np.array([BENCH[b.split(":")[0]][1] for b in law.anchors_])
    for fam in ("fb", "fc", "fd"):
        true = A @ (np.array(ALPHA[fam]) - np.array(ALPHA["fa"]))
        got = table[table["family"] == fam].sort_values("skill")
        assert (got["shift_lower"].to_numpy() <= true).all() and (true <= got["shift_upper"].to_numpy()).all(), (fam, true, got)
        assert np.abs(got["shift"].to_numpy() - true).max() < 0.15
    ref = table[table["family"] == "fa"]
    assert np.allclose(ref[["shift", "log10_k"]].to_numpy(), 0.0) and np.allclose(ref["k"], 1.0)


def test_compute_multiplier_matches_the_shift_along_the_recipe():
    """With no N x D term, matching a shift of s needs u = -s / slope decades of compute, where the
    slope along a fixed tokens-per-parameter ratio is (G_N + G_D) / 2 per decade."""
    law = make("skills", target="b1:acc", n_bootstrap=0).fit(skill_rows(noise=False))
    S, _ = law._joint.layout.expand(law.state_["theta"])
    g = law._joint.layout.split(S)[0][0]
    table = law.family_table("fa", 1e9, 2e10)
    centre = law._joint.problem.center
    a0, b0 = 9.0 - centre[0], np.log10(2e10) - centre[1]
    for _, r in table.iterrows():
        s = r["skill"] - 1
        c1, c2 = (g[0, s] + g[1, s]) / 2 + g[2, s] * (a0 + b0) / 2, g[2, s] / 4
        u = r["log10_k"]
        assert r["shift"] + c1 * u + c2 * u * u == pytest.approx(0.0, abs=1e-9)
        assert c1 + 2 * c2 * u > 0  # the root on the rising branch


def test_held_out_family_is_predicted_from_its_smallest_model_within_noise():
    rows = skill_rows(seed=1)
    smallest = "fd-5e+07"
    train = rows[(rows["family"] != "fd") | (rows["model"] == smallest)]
    test = rows[(rows["family"] == "fd") & (rows["model"] != smallest)]
    inside = []
    for task in ("b1", "b4", "b5"):
        law = make("skills", target=f"{task}:acc", n_bootstrap=50).fit(train)
        pred = law.predict(test)
        err = np.abs(pred["predicted"] - pred["actual"])
        assert len(pred) == 4 and (err < 4 * pred["stderr"] + 0.01).all(), (task, err.tolist())
        inside += ((pred["actual"] >= pred["lower"]) & (pred["actual"] <= pred["upper"])).tolist()
    assert np.mean(inside) >= 0.75


def test_one_joint_fit_serves_every_target():
    rows = skill_rows()
    a = make("skills", target="b2:acc", n_bootstrap=20).fit(rows)
    b = make("skills", target="b6:acc", n_bootstrap=20).fit(rows)
    assert a._joint is b._joint and a.boot_["theta"] is b.boot_["theta"]
    assert a.predict(rows)["predicted"].to_numpy() != pytest.approx(b.predict(rows)["predicted"].to_numpy())


def test_a_family_the_fit_has_not_seen_is_the_average_family():
    rows = skill_rows()
    law = make("skills", target="b1:acc", n_bootstrap=20).fit(rows[rows["family"] != "fd"])
    pred = law.predict(rows[rows["family"] == "fd"])
    assert np.isfinite(pred["predicted"]).all() and (pred["lower"] <= pred["upper"]).all()


def test_structured_step_equals_the_dense_gauss_newton_step():
    rows = skill_rows()
    law = make("skills", target="b1:acc", n_bootstrap=0, n_skills=2, shift_penalty=0.1).fit(rows)
    p, L = law._joint.problem, law._joint.layout
    obj = Objective(p, L, [(1e-4, 0.1)] * 2)
    theta = start(p, L, np.ones((2, p.n))) + 0.01
    r, Jt = obj.residuals(theta, np.arange(2))
    h = obj.weights(np.ones((2, p.n)))
    step, g = obj.solve(Jt, h, r, np.full(2, 1e-3), 1e-9)
    eps = 1e-6  # dense Jacobian by central differences
    J = np.stack([(obj.residuals(theta + eps * e, np.arange(2))[0] - obj.residuals(theta - eps * e, np.arange(2))[0])
                  / (2 * eps) for e in np.eye(theta.shape[1])], axis=-1)
    JtH = J.transpose(0, 2, 1) * h[:, None, :]
    dense_g = (JtH @ r[..., None])[..., 0]
    assert g == pytest.approx(dense_g, rel=1e-5, abs=1e-8)
    assert step == pytest.approx(damped_solve(JtH @ J, dense_g, np.full(2, 1e-3), 1e-9), rel=1e-4, abs=1e-7)


def test_options_and_inputs_are_checked():
    rows = skill_rows()
    with pytest.raises(FitError, match="n_skills must be 'auto' or a whole number"):
        make("skills", target="b1:acc", n_skills=0).fit(rows)
    with pytest.raises(FitError, match="shift_penalty must be a number > 0"):
        make("skills", target="b1:acc", shift_penalty=-1).fit(rows)
    with pytest.raises(FitError, match="k skills need at least k"):
        make("skills", target="b1:acc", benchmarks=["b1:acc"], n_skills=2).fit(rows)
    one = make("skills", target="b1:acc", benchmarks=["b1:acc"], n_bootstrap=0).fit(rows)  # one benchmark, one skill
    assert one.n_skills_ == 1 and one.benchmarks_ == ["b1:acc"]
    with pytest.raises(FitError, match="b9:acc has no rows"):
        make("skills", target="b1:acc", benchmarks=["b1:acc", "b9:acc"]).fit(rows)
    dup = pd.concat([rows, rows[rows["task"] == "b2"].assign(num_fewshot=5)])
    with pytest.raises(FitError, match="more than one row"):
        make("skills", target="b1:acc").fit(dup)
    with pytest.raises(FitError, match="reference family 'zz'"):
        make("skills", target="b1:acc", n_bootstrap=0).fit(rows).family_table("zz", 1e9, 2e10)


# -- keep_smallest splits and the CLI ----------------------------------------------------------
SPLIT = {"leave_out": "family", "values": ["fd", "fb"], "rows": "suite == 'toy'", "keep_smallest": 1,
         "targets": ["b1:acc"], "methods": ["skills"]}


def test_keep_smallest_folds_keep_the_smallest_model_in_training():
    rows = skill_rows()
    folds = backtest.table_folds("s", SPLIT, rows)
    assert [f for f, _, _ in folds] == ["s/fd", "s/fb"]
    _, train_q, test_q = folds[0]
    train, test = backtest.select(rows, train_q, "t"), backtest.select(rows, test_q, "t")
    fd = sorted(rows.loc[rows["family"] == "fd", "model"].unique(), key=lambda m: float(m.split("-")[1]))
    assert set(train.loc[train["family"] == "fd", "model"]) == {fd[0]} == {"fd-5e+07"}
    assert sorted(test["model"].unique()) == sorted(fd[1:])
    assert len(train) + len(test) == len(rows)
    assert tuple(map(str, backtest.folds("s", SPLIT)[0])) == ("s/fd", "suite == 'toy' and family != 'fd'",
                                                              "suite == 'toy' and family == 'fd'")
    with pytest.raises(FitError, match="keep_smallest: 5 leaves no model"):
        backtest.table_folds("s", {**SPLIT, "keep_smallest": 5}, rows)


def test_stage_runs_a_keep_smallest_split(tmp_path):
    path = tmp_path / "toy.parquet"
    skill_rows().to_parquet(path)
    cfg = {"n_bootstrap": 10, "splits": {"lofo": {**SPLIT, "methods": ["skills", "sigmoid"]}}}
    backtest_stage.run_stage(cfg, str(path), str(tmp_path / "out"))
    preds = pd.read_csv(tmp_path / "out" / "backtest_predictions.csv")
    assert set(preds["fold"]) == {"lofo/fd", "lofo/fb"} and len(preds) == 2 * 2 * 4
    assert not preds["model"].isin(["fd-5e+07", "fb-5e+07"]).any()
    assert set(preds.loc[preds["method"] == "skills", "n_components"]) <= {1, 2, 3, 4}


def test_cli_leave_out_with_keep_smallest(tmp_path, capsys):
    path = tmp_path / "toy.csv"
    skill_rows().to_csv(path, index=False)
    rc = backtest_stage.main(["--scores", str(path), "--method", "skills", "--target", "b4:acc", "--rows", "suite == 'toy'",
                        "--leave-out", "family=fd", "--keep-smallest", "1", "--bootstrap", "10"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert sum("90% [" in line for line in lines) == 4
    assert lines[-1].startswith("MAE ") and "over 4 predictions" in lines[-1]
    rc = backtest_stage.main(["--scores", str(path), "--method", "skills", "--target", "b4:acc", "--leave-out", "family",
                        "--bootstrap", "0"])
    out, err = capsys.readouterr()
    assert rc == 2 and "--leave-out 'family' is not COLUMN=VALUE" in err and len(err.strip().splitlines()) == 1
    rc = backtest_stage.main(["--scores", str(path), "--method", "skills", "--target", "b4:acc", "--leave-out", "family=fd",
                        "--train", "params > 0"])
    out, err = capsys.readouterr()
    assert rc == 2 and "drop --train/--test" in err


def test_observational_compute_mode_may_use_the_target_as_a_feature():
    rows = skill_rows()
    feats = ["b1:acc", "b2:acc", "b3:acc"]
    law = make("observational", target="b1:acc", mode="compute", features=feats, n_bootstrap=0).fit(rows)
    assert "b1:acc" in [str(f) for f in law.features_]
    default = make("observational", target="b1:acc", mode="compute", n_bootstrap=0).fit(rows)
    assert "b1:acc" in [str(f) for f in default.features_]
    with pytest.raises(FitError, match="cannot also be a feature in features mode"):
        make("observational", target="b1:acc", features=feats, n_bootstrap=0).fit(rows)


def _full_layout_step(obj, Jt, h, r, lam, ridge):
    """The structured step as first written: J^T H J over every shared parameter (the fixed ones
    included), then the free ones selected; the reference the compact solve must match bit for bit."""
    G_, Dphi, Th, Lam, alpha, rho = Jt
    p, L = obj.p, obj.L
    B, n, J, k, F = len(G_), p.n, p.J, L.k, L.F
    nc = n * J
    hc, rc = h[:, :nc].reshape(B, n, J), r[:, :nc].reshape(B, n, J)
    D, Hgp, Dpp = hc * G_ * G_, hc * G_ * Dphi, hc * Dphi * Dphi
    Rg, Rp = hc * rc * G_, hc * rc * Dphi
    Z, O = p.Z, obj.O
    o_g, o_lam, o_b, o_phi = L.offsets()
    A = np.zeros((B, L.shared_size, L.shared_size))
    M = D @ (Lam[:, :, :, None] * Lam[:, :, None, :]).reshape(B, J, k * k)
    A[:, :o_lam, :o_lam] = (obj.ZZ.T[None] @ M).reshape(B, 3, 3, k, k).transpose(0, 1, 3, 2, 4).reshape(B, 3 * k, 3 * k)
    DT = (D[:, :, :, None] * Th[:, :, None, :]).reshape(B, n, J * k)
    LamT1 = Lam.transpose(0, 2, 1)[:, None]
    A[:, :o_lam, o_lam:o_b] = ((Z.T[None] @ DT).reshape(B, 3, 1, J, k) * LamT1[..., None]).reshape(B, 3 * k, J * k)
    A[:, :o_lam, o_b:o_phi] = ((Z.T[None] @ D)[:, :, None, :] * LamT1).reshape(B, 3 * k, J)
    A[:, :o_lam, o_phi:] = ((Z.T[None] @ Hgp)[:, :, None, :] * LamT1).reshape(B, 3 * k, J)
    Tht = Th.transpose(0, 2, 1)
    LL = D.transpose(0, 2, 1) @ (Th[:, :, :, None] * Th[:, :, None, :]).reshape(B, n, k * k)
    Lb, Lp = (Tht @ D).transpose(0, 2, 1), (Tht @ Hgp).transpose(0, 2, 1)
    j, t, u = np.meshgrid(np.arange(J), np.arange(k), np.arange(k), indexing="ij")
    ll = (o_lam + j * k + t).ravel(), (o_lam + j * k + u).ravel()
    j2, t2 = np.meshgrid(np.arange(J), np.arange(k), indexing="ij")
    lb = (o_lam + j2 * k + t2).ravel(), (o_b + j2).ravel()
    lp = (o_lam + j2 * k + t2).ravel(), (o_phi + j2).ravel()
    js = np.arange(J)
    bb, bp, pp = (o_b + js, o_b + js), (o_b + js, o_phi + js), (o_phi + js, o_phi + js)
    A[:, ll[0], ll[1]], A[:, lb[0], lb[1]], A[:, lp[0], lp[1]] = LL.reshape(B, -1), Lb.reshape(B, -1), Lp.reshape(B, -1)
    A[:, bb[0], bb[1]], A[:, bp[0], bp[1]], A[:, pp[0], pp[1]] = D.sum(1), Hgp.sum(1), Dpp.sum(1)
    A[:, o_lam:, :o_lam] = A[:, :o_lam, o_lam:].transpose(0, 2, 1)
    for idx in (lb, lp, bp):
        A[:, idx[1], idx[0]] = A[:, idx[0], idx[1]]
    A[:, :o_lam, :o_lam] += rho[:, 0, None, None] * obj.PtP[None, :o_lam, :o_lam]
    OD, OH = O.T[None] @ D, O.T[None] @ Hgp
    ODT = (O.T[None] @ DT).reshape(B, F, 1, J, k)
    LamT = Lam.transpose(0, 2, 1)
    C = np.empty((B, F, k, L.shared_size))
    C[..., :o_lam] = (obj.ZO.T[None] @ M).reshape(B, 3, F, k, k).transpose(0, 2, 4, 1, 3).reshape(B, F, k, 3 * k)
    C[..., o_lam:o_b] = (ODT * LamT[:, None, :, :, None]).reshape(B, F, k, J * k)
    C[..., o_b:o_phi] = OD[:, :, None, :] * LamT[:, None]
    C[..., o_phi:] = OH[:, :, None, :] * LamT[:, None]
    Aaa = (O.T[None] @ M).reshape(B, F, k, k) + rho[:, 1, None, None, None] * np.eye(k)
    gs = np.zeros((B, L.shared_size))
    gs[:, :o_lam] = ((Z.T[None] @ Rg) @ Lam).reshape(B, 3 * k)
    gs[:, o_lam:o_b] = (Rg.transpose(0, 2, 1) @ Th).reshape(B, J * k)
    gs[:, o_b:o_phi], gs[:, o_phi:] = Rg.sum(1), Rp.sum(1)
    gs += (np.sqrt(rho[:, :1]) * r[:, nc: nc + len(obj.P)] * h[:, nc: nc + len(obj.P)]) @ obj.P
    ga = (O.T[None] @ Rg) @ Lam + rho[:, 1, None, None] * alpha
    i = L.shared_free()
    A, C, gs = A[:, i[:, None], i[None, :]], C[..., i], gs[:, i]
    Ps = len(i)
    eye_s, eye_k = np.eye(Ps), np.eye(k)
    A = A + lam[:, None, None] * (np.einsum("bii->bi", A)[:, :, None] * eye_s + ridge * eye_s)
    Aaa = Aaa + lam[:, None, None, None] * (np.einsum("bfii->bfi", Aaa)[..., None] * eye_k + ridge * eye_k)
    KT = (np.linalg.inv(Aaa) @ C).reshape(B, F * k, Ps)
    Sc = A - C.reshape(B, F * k, Ps).transpose(0, 2, 1) @ KT
    rhs = -gs + (KT.transpose(0, 2, 1) @ ga.reshape(B, F * k, 1))[..., 0]
    ds = np.linalg.solve(Sc, rhs[..., None])[..., 0]
    da = np.linalg.solve(Aaa, (-ga - (C @ ds[:, None, :, None])[..., 0])[..., None])[..., 0]
    step = np.concatenate([ds, da.reshape(B, -1)], axis=1)
    return np.where(np.isfinite(step), step, 0.0), np.concatenate([gs, ga.reshape(B, -1)], axis=1)


@pytest.mark.parametrize("floor", ["auto", "free"])
def test_compact_step_is_the_full_layout_step_bit_for_bit(floor):
    """The solve builds J^T H J over the free parameters only; the step and gradient are the
    same numbers, to the last bit, as selecting them from the full layout (outputs stay byte-identical)."""
    rows = skill_rows()
    law = make("skills", target="b1:acc", n_bootstrap=0, n_skills=2, shift_penalty=0.1, floor=floor).fit(rows)
    p, L = law._joint.problem, law._joint.layout
    assert any(L.free_floor) == (floor == "free")
    rng = np.random.default_rng(1)
    W = rng.poisson(1.0, (7, p.n)).astype(float)
    obj = Objective(p, L, [(1e-4, 0.1)] * 7)
    theta = start(p, L, W) + 0.01 * rng.standard_normal((7, L.size))
    r, Jt = obj.residuals(theta, np.arange(7))
    h = obj.weights(W)
    lam = np.full(7, 1e-3)
    for got, want in zip(obj.solve(Jt, h, r, lam, 1e-9), _full_layout_step(obj, Jt, h, r, lam, 1e-9)):
        assert np.array_equal(got, want)
    _, _, Aaa, _, _ = obj._blocks(Jt, h, r)
    assert np.array_equal(obj.shift_precision(Jt, h), Aaa)
