"""`dvc repro` end to end in a temporary copy of the repository, as on a fresh clone."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import scores
from tests.paths import ROOT

BIN = Path(sys.executable).parent


def run(cmd, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The tracked files (what a clone has), minus generated outputs, in a fresh git repository."""
    if shutil.which("dvc", path=str(BIN)) is None:
        pytest.skip("dvc is not installed in this environment")
    dest = tmp_path_factory.mktemp("clone") / "capcast"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in filter(None, files.split("\0")):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("reports/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q"], dest)
    return dest


@pytest.mark.slow
def test_dvc_repro_builds_everything_then_does_nothing(repo):
    first = run([str(BIN / "dvc"), "repro"], repo)
    assert first.returncode == 0, first.stdout + first.stderr
    table = scores.read(repo / "data/scores.parquet")
    published = scores.read(repo / "data/published/scores.csv")
    assert len(table) >= len(published)
    assert (repo / "reports/forecast.md").is_file()
    assert (repo / "reports/plots/accuracy_vs_compute.png").stat().st_size > 10_000
    summary = pd.read_csv(repo / "reports/data_summary.csv")
    assert summary.rows.sum() == len(table)
    # the report (issue #6): forecasts of every target, one self-contained page and its Markdown twin
    forecast = pd.read_csv(repo / "reports/forecast.csv")
    assert forecast["target"].nunique() >= 3 and forecast["predicted"].notna().any()
    page = (repo / "reports/index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') >= 8
    assert "<script" not in page and "https://" not in page and "http://" not in page
    assert "## Forecasts at the target sizes" in (repo / "reports/forecast.md").read_text()

    second = run([str(BIN / "dvc"), "repro"], repo)
    assert second.returncode == 0, second.stderr
    assert "Data and pipelines are up to date" in second.stdout
    assert "Running stage" not in second.stdout
