"""What a researcher sees through DVC: small metrics, plots that render offline, a clone that stays clean."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import scores
from tests.paths import ROOT, SHARED
from tests.test_report import CHECK, FLAGS, _chromium

BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
needs_dvc = pytest.mark.skipif(not DVC.exists(), reason="dvc is not installed in this environment")


def run(cmd, cwd, timeout=600, **env):
    res = subprocess.run(cmd, cwd=cwd, env={**ENV, **env}, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@needs_dvc
def test_dvc_metrics_show_is_narrow_and_flat():
    out = run([str(DVC), "metrics", "show"], ROOT).stdout
    lines = out.splitlines()
    assert len(lines) >= 10 and max(map(len, lines)) < 200, max(map(len, lines))
    files = sorted((ROOT / "reports/metrics").rglob("*.json")) + [ROOT / "reports/trends_metrics.json"]
    for path in files:
        m = json.loads(path.read_text())
        assert {"n", "mae", "coverage"} <= set(m) and len(m) <= 6, path
        assert all(v is None or isinstance(v, (int, float)) for v in m.values()), f"{path}: flat numbers only"
        assert m["coverage"] is None or 0 <= m["coverage"] <= 1
    bt = pd.read_csv(ROOT / "reports/backtest.csv")
    alls = bt[bt["task"] == "ALL"]
    per_split = [p for p in (ROOT / "reports/metrics").rglob("*.json") if p.parent.name != "two_step_splits"]
    assert len(per_split) == len(alls), "one file per split x method"
    for _, r in alls.iterrows():  # points, as in backtest.csv
        m = json.loads((ROOT / "reports/metrics" / r["split"] / f"{r['method']}.json").read_text())
        assert m["mae"] == pytest.approx(r["mae"], abs=1e-3) and m["n"] == r["n"]
    # the headline: each method's mean MAE and smallest coverage over the splits two_step runs on
    two_step = set(alls.loc[alls["method"] == "two_step", "split"])
    for path in (ROOT / "reports/metrics/two_step_splits").glob("*.json"):
        m, own = json.loads(path.read_text()), alls[alls["split"].isin(two_step) & (alls["method"] == path.stem)]
        assert m["n"] == len(own) and m["mae"] == pytest.approx(own["mae"].mean(), abs=1e-3)
        assert m["coverage"] == pytest.approx(own["coverage"].min(), abs=1e-3)


@needs_dvc
def test_dvc_shows_the_forecasts_as_metrics():
    """`dvc metrics show` (and so `dvc exp show`, which compares experiments) lists auto's forecast of
    every target and task of reports/forecast.csv: predicted, lower and upper, one number per file."""
    shown = json.loads(run([str(DVC), "metrics", "show", "--json"], ROOT).stdout)
    data = {path: m["data"] for path, m in shown[""]["data"].items() if path.startswith("reports/forecast/")}
    fc = pd.read_csv(ROOT / "reports/forecast.csv")
    auto = fc[fc["method"] == "auto"]
    assert len(auto) and len(data) == 3 * len(auto)
    slugs = dict(zip(auto.drop_duplicates("target")["target"], auto.drop_duplicates("target")["family"]))
    for _, r in auto.iterrows():
        for bound in ("predicted", "lower", "upper"):
            m = data[f"reports/forecast/{slugs[r['target']]}/{r['task']}.{bound}.json"]
            assert list(m) == ["forecast"]
            assert (m["forecast"] is None and pd.isna(r[bound])) or m["forecast"] == pytest.approx(r[bound], abs=1e-4)
    header = run([str(DVC), "exp", "show", "--csv"], ROOT).stdout.splitlines()[0].split(",")
    assert "reports/forecast/pythia/arc_easy.predicted.json:forecast" in header


@needs_dvc
@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (tests/setup_browser.sh installs it)")
def test_dvc_plots_show_renders_offline(tmp_path):
    """`dvc plots show` writes a page of the report's figures that loads nothing from the network."""
    out = tmp_path / "dvc_plots"
    run([str(DVC), "plots", "show", "-o", str(out)], ROOT)
    text = (out / "index.html").read_text()
    assert "<script" not in text and not re.search(r"https?://", text), "no script, no network reference"
    n_img = text.count("<img ")
    assert n_img == len(list((ROOT / "reports/plots").glob("*.png"))) >= 8
    page = out / "check.html"
    page.write_text(text.replace("</body>", CHECK + "</body>"))
    netlog = tmp_path / "net.json"
    res = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={netlog}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', re.search(r"<body([^>]*)>", res.stdout).group(1)))
    assert int(attrs["data-images"]) == int(attrs["data-rendered"]) == n_img, attrs
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = [e["params"]["url"] for e in log["events"]
            if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []


def test_stage_processes_pin_the_numerical_kernels():
    """A stage process (anything importing pipeline before numpy) runs OpenBLAS's Haswell kernels on one
    thread and numpy's AVX2 loops, whatever the x86-64 CPU: the same bytes on every such machine."""
    code = ("import pipeline, json, numpy, scipy.linalg, threadpoolctl;"
            "from numpy._core._multiarray_umath import __cpu_features__ as f;"
            "print(json.dumps([f.get('AVX512_SKX'), [(i['internal_api'], i.get('architecture'), i['num_threads'])"
            " for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas']]))")
    env = {k: v for k, v in ENV.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                                                     "NPY_DISABLE_CPU_FEATURES")}
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    skx, blas = json.loads(res.stdout)
    assert blas and all(threads == 1 for _, _, threads in blas)
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2 " in cpu and " fma " in cpu:
        assert all(arch == "Haswell" for _, arch, _ in blas) and not skx, (skx, blas)


@pytest.mark.slow
@needs_dvc
def test_fresh_clone_stays_clean_after_make_repro(tmp_path):
    """git clone, ../shared beside it, `make repro`: git status stays empty; then a forced `dvc repro -f`
    rewrites every output with the same bytes (two runs of every stage are byte-identical).

    The clone reuses this environment's .venv (a link, and `make -o` so that make does not reinstall
    into it): the install step is `make install`'s business, tested by CI on a bare machine.
    """
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "capcast"
    run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    (clone / ".venv").symlink_to(BIN.parent)
    stamp = ".venv/.installed"
    make = run(["make", "-o", stamp, "repro"], clone, PYTHONPATH=str(clone))
    status = run(["git", "status", "--porcelain"], clone).stdout
    assert status == "", f"make repro left the clone dirty:\n{status}\n{make.stdout[-2000:]}"
    forced = run([str(DVC), "repro", "-f"], clone, timeout=900, PYTHONPATH=str(clone))
    assert forced.returncode == 0, forced.stdout[-2000:] + forced.stderr[-2000:]
    status = run(["git", "status", "--porcelain"], clone).stdout
    note = " (this checkout has uncommitted changes: the clone tests HEAD)" if dirty else ""
    assert status == "", f"dvc repro -f changed committed outputs{note}:\n{status}"
    # every stage ran; what it built is whole; and a run with nothing changed does nothing
    assert all(f"Running stage '{s}'" in forced.stdout for s in ("collect", "trends", "backtest", "forecast", "report"))
    table = scores.read(clone / "data/scores.parquet")
    assert len(table) >= len(scores.read(clone / "data/published/scores.csv"))
    assert pd.read_csv(clone / "reports/data_summary.csv")["rows"].sum() == len(table)
    forecast = pd.read_csv(clone / "reports/forecast.csv")
    assert forecast["target"].nunique() >= 3 and forecast["predicted"].notna().any()
    page = (clone / "reports/index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') >= 8
    assert "<script" not in page and "https://" not in page and "http://" not in page
    again = run([str(DVC), "repro"], clone, PYTHONPATH=str(clone))
    assert again.returncode == 0 and "Data and pipelines are up to date" in again.stdout, again.stdout[-2000:]
    assert "Running stage" not in again.stdout
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
