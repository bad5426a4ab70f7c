"""Two-step diagnostics (pipeline/forecasting/diagnostics.py): the frame's curves are the law's own
predictions, both front doors write it, and its figure keeps every text on the canvas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import laws, report
from pipeline.forecasting import diagnostics, family, targets
from pipeline.report import figures, plotting
from tests.test_figures import COUNTS, TASKS, text_problems
from tests.test_laws import SIZES, TOKENS_PER_STEP, ladder_rows

STEPS = (500, 2000, 5000, 10000, 20000, 40000, 70000, 100000)  # 500, 2000, 5000: a run's first 10%, left out
TARGET = targets.Target("toy at 30B", "toy", "toy", 3e10, 100000 * TOKENS_PER_STEP, loss="toyloss:ppl")
IDS = {"target": TARGET.name, "task": "arc_easy", "metric": "acc", "method": "two_step"}


@pytest.fixture(scope="module")
def fitted():
    rows = ladder_rows(steps=STEPS, noise=0.002)
    units = targets.target_units(rows, TARGET, {"curve_points": 15})
    law = laws.make("two_step", target="arc_easy:acc", loss="toyloss:ppl", n_bootstrap=10).fit(rows)
    return rows, units, law, law.predict(units), diagnostics.two_step_frame(law, rows, units, IDS)


def test_the_frames_curves_are_the_laws_own_predictions(fitted):
    rows, units, law, pred, frame = fitted
    by = {k: frame[frame["kind"] == k] for k in diagnostics.KINDS}
    assert set(frame["kind"]) == set(diagnostics.KINDS)
    # step 1: the loss law along the recipe and at the target, on the scale it was fitted (ln ppl)
    np.testing.assert_allclose(by["loss_fit"]["y"], pred["intermediate"].iloc[1:], rtol=1e-12)
    np.testing.assert_allclose(by["loss_fit"]["x"], units["params"].iloc[1:], rtol=1e-12)
    assert by["loss_target"]["y"].item() == pytest.approx(pred["intermediate"].iloc[0], rel=1e-12)
    # step 2: the link at each predicted loss of the recipe is the law's prediction there; at the target, the forecast
    link = by["link_fit"].set_index("x")["y"]
    np.testing.assert_allclose(link.loc[pred["intermediate"].iloc[1:]].to_numpy(), pred["predicted"].iloc[1:],
                               rtol=1e-12)
    assert by["link_target"]["x"].item() == pytest.approx(pred["intermediate"].iloc[0], rel=1e-12)
    assert by["link_target"]["y"].item() == pytest.approx(pred["predicted"].iloc[0], rel=1e-12)
    assert by["link_fit"]["x"].min() <= pred["intermediate"].min() and by["link_fit"]["x"].is_monotonic_increasing
    # the points: those fitted, and the early checkpoints the law leaves out
    fit_loss = by["loss_points"][by["loss_points"]["fitted"]]
    assert len(fit_loss) == law.n_loss_points_ == len(SIZES) * 5
    assert len(by["loss_points"]) == len(SIZES) * len(STEPS)
    assert (by["link_points"]["fitted"].sum()) == law.n_link_points_
    loss_rows = rows[rows["task"] == "toyloss"].set_index(["model", "step"])["value"]
    np.testing.assert_allclose(fit_loss["y"], np.log(loss_rows.loc[list(zip(fit_loss["model"], fit_loss["step"]))]),
                               rtol=1e-12)
    assert frame["loss"].eq("toyloss:ppl").all() and frame["loss_scale"].eq("log").all()
    assert frame["target"].eq(TARGET.name).all() and list(frame.columns) == diagnostics.COLUMNS


def test_other_laws_have_no_diagnostics(fitted):
    rows, units, _, _, _ = fitted
    law = laws.make("loglinear", target="arc_easy:acc", n_bootstrap=0).fit(rows)
    assert diagnostics.two_step_frame(law, rows, units, IDS).empty


def test_both_front_doors_write_the_diagnostics(fitted, tmp_path):
    rows = fitted[0]
    cfg = {"metric": "acc", "num_fewshot": 0, "methods": ["two_step", "loglinear"], "curve_points": 10,
           "method_options": {"two_step": {"n_bootstrap": 10}, "loglinear": {"n_bootstrap": 10}}}
    fc, _, diags = targets.forecast_target(rows, TARGET, cfg, 0.9)
    diag = diagnostics.concat(diags)
    two = next(r for r in fc if r["method"] == "two_step")
    assert set(diag["method"]) == {"two_step"} and set(diag["task"]) == {"arc_easy"}
    assert diag.loc[diag["kind"] == "link_target", "y"].item() == pytest.approx(two["predicted"], rel=1e-12)

    req = family.Request(family="toy", targets=((3e10, 100000 * TOKENS_PER_STEP),), tasks=("arc_easy",),
                         method="two_step", loss="toyloss:ppl", n_bootstrap=10, curve_points=10)
    res = family.run(rows, req)
    assert res.forecast["method"].tolist() == ["two_step"]
    link_target = res.diagnostics.loc[res.diagnostics["kind"] == "link_target", "y"]
    assert link_target.item() == pytest.approx(res.forecast["predicted"].iloc[0], rel=1e-12)

    from pipeline.stages import report as report_stage

    report.write(*report_stage.report_inputs(res, req), tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert 'alt="two-step fits for' in page and "two_step_diagnostics.csv" in page


@pytest.mark.parametrize("n", COUNTS)
def test_the_two_step_figure_keeps_its_text_on_the_canvas(fitted, n):
    frame = fitted[-1].assign(target="My-own-ladder recipe at 30B params, 300B tokens (a long target name)")
    many = pd.concat([frame.assign(task=t) for t in TASKS[:n]], ignore_index=True)
    fig = figures.plot_two_step(many, None)
    try:
        assert text_problems(fig) == []
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles[0].startswith("step 1") and len([t for t in titles if t.startswith("step 2")]) == n
    finally:
        plotting.plt.close(fig)
