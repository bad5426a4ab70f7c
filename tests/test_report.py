"""The report: every number equals the CSV it came from; plots are labelled; the page renders offline.

The report is built once into a temporary directory from the repository's inputs (the CSVs the
pipeline wrote under reports/; stages missing there are run into the temporary directory), then:

* every table of index.html and of forecast.md is parsed and each row is found, cell for cell,
  in the CSV its caption names (formatted with the report's one number format, and re-checked as
  floats to 3 significant digits);
* the prose numbers of the family comparison match family_offsets.csv;
* the plot builders give log scale axes with units, legends, and chance lines;
* headless Chromium opens index.html from disk, every image decodes, and no request leaves.
"""
from __future__ import annotations

import base64
import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import report
from pipeline.stages import report as report_stage
from tests.paths import ROOT

PY = sys.executable
ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
       "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(args, cwd=ROOT):
    res = subprocess.run([PY, "-m", "pipeline", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(in_dir, out_dir, scores): the report built from the repository's inputs into a temporary directory."""
    tmp = tmp_path_factory.mktemp("report")
    scores_path = ROOT / "data/scores.parquet"
    if not scores_path.exists():  # a fresh clone before `dvc repro`
        scores_path = tmp / "scores.parquet"
        _run(["collect", "--out", str(scores_path)])
    inputs = ROOT / "reports"
    if not (inputs / "forecast.csv").exists() or not (inputs / "family_offsets.csv").exists():
        inputs = tmp / "inputs"
        inputs.mkdir()
        for name in ("backtest.csv", "backtest_predictions.csv", "trends.csv", "trends_emergence.csv",
                     "trends_backtest.csv", "trends_backtest_summary.csv"):
            if (ROOT / "reports" / name).exists():
                shutil.copy(ROOT / "reports" / name, inputs / name)
        _run(["forecast", "--scores", str(scores_path), "--out-dir", str(inputs)])
    out = tmp / "out"
    _run(["report", "--scores", str(scores_path), "--in-dir", str(inputs), "--out-dir", str(out)])
    return inputs, out, scores_path


def _source(built, name: str) -> pd.DataFrame:
    inputs, out, _ = built
    path = out / name if (out / name).exists() else inputs / name
    assert path.exists(), f"table source {name} not found"
    return pd.read_csv(path)


# ------------------------------------------------------------------------------- parsing
class _Tables(html.parser.HTMLParser):
    """Tables with their data-source, header and body cells; plus img srcs and every URL attribute."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.imgs, self.urls, self.tags = [], [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for k in ("src", "href", "action", "data", "poster", "srcset"):
            if k in a:
                self.urls.append((tag, k, a[k]))
        if tag == "table":
            self.tables.append({"source": a.get("data-source"), "head": [], "rows": []})
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.imgs.append(a)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self.tables:
            t = self.tables[-1]
            if t["head"]:
                t["rows"].append(self._row)
            else:
                t["head"] = self._row


def html_tables(text: str) -> list[dict]:
    p = _Tables()
    p.feed(text)
    return p.tables


def md_tables(text: str) -> list[dict]:
    tables, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"<!-- table source=(\S+) -->", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("|"):
            j += 1
        block = []
        while j < len(lines) and lines[j].startswith("|"):
            block.append(lines[j])
            j += 1
        cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in block]
        tables.append({"source": m.group(1), "head": cells[0], "rows": cells[2:]})
        i = j
    return tables


def column(header: str) -> str:
    """The CSV column a printed header names: "mae (points)" -> "mae" (headers carry their unit)."""
    return header.split(" (", 1)[0]


def _matches(cell: str, value) -> bool:
    """A printed cell equals a CSV value: same text through the report's format, or (for numbers)
    the same number to 3 significant digits, read back independently of that format.  A multiple
    prints with "×" after it (an extrapolation of 15.6 as "15.6×")."""
    if isinstance(value, str):
        return cell == value
    if pd.isna(value):
        return cell == report.DASH
    cell = cell.removesuffix("×")
    if cell == report.fmt(value.item() if isinstance(value, np.generic) else value):
        return True
    if isinstance(value, (int, np.integer)) or float(value).is_integer():
        if cell == str(int(value)):
            return True
    try:
        x = float(cell)
    except ValueError:
        return False
    v = float(value)
    return x == v or (math.isfinite(v) and abs(x - v) <= 5e-3 * abs(v) + 1e-12)


def check_table(t: dict, csv: pd.DataFrame, where: str) -> int:
    """Every row of a printed table is a row of the CSV (for the columns the CSV has)."""
    head = [column(h) for h in t["head"]]
    cols = [c for c in head if c in csv.columns]
    assert len(cols) >= 2, f"{where} ({t['source']}): columns {t['head']} are not the CSV's {list(csv.columns)}"
    idx = [head.index(c) for c in cols]
    records = csv[cols].to_dict("records")
    numbers = 0
    for row in t["rows"]:
        cells = [row[i] for i in idx]
        found = any(all(_matches(cell, rec[c]) for cell, c in zip(cells, cols)) for rec in records)
        assert found, f"{where}: row {dict(zip(cols, cells))} is not in {t['source']}"
        numbers += sum(1 for c in cells if re.fullmatch(r"-?[\d.]+(e[+-]\d+)?|inf", c))
    return numbers


# ------------------------------------------------------------------------------- numbers
def test_html_tables_equal_their_csvs(built):
    text = (built[1] / "index.html").read_text()
    tables = html_tables(text)
    sources = {t["source"] for t in tables}
    assert {"at_a_glance.csv", "forecast.csv", "family_offsets.csv", "data_summary.csv"} <= sources, sources
    if (built[0] / "backtest.csv").exists():
        assert "backtest.csv" in sources
    if (built[0] / "trends.csv").exists():
        assert "trends.csv" in sources
    numbers = sum(check_table(t, _source(built, t["source"]), "index.html") for t in tables)
    assert numbers > 200


def test_markdown_tables_equal_their_csvs_and_the_html(built):
    md = md_tables((built[1] / "forecast.md").read_text())
    ht = html_tables((built[1] / "index.html").read_text())
    for t in md:
        check_table(t, _source(built, t["source"]), "forecast.md")
    assert [(t["source"], t["head"], t["rows"]) for t in md] == [(t["source"], t["head"], t["rows"]) for t in ht]


def _glance(built) -> list[dict]:
    """The printed at-a-glance table (the first table of the page), as one dict per row."""
    t = html_tables((built[1] / "index.html").read_text())[0]
    assert t["source"] == "at_a_glance.csv"
    return [dict(zip(map(column, t["head"]), row)) for row in t["rows"]]


def test_glance_is_first_and_has_every_target_and_task(built):
    fc = _source(built, "forecast.csv")
    rows = _glance(built)
    want = fc.loc[fc["predicted"].notna(), ["target", "task"]].drop_duplicates()
    assert sorted((r["target"], r["task"]) for r in rows) == sorted(map(tuple, want.to_numpy()))
    text = (built[1] / "index.html").read_text()
    assert text.index('id="glance"') < text.index('id="targets"') < text.index('id="methods"')
    for r in rows:  # the flags say what the numbers show
        r["flags"] = r["flags"].replace(report.DASH, "")
        assert ("interval reaches 1" in r["flags"]) == (r["upper"] == "1"), r
        assert ("× the largest" in r["flags"]) == (float(r["extrapolation"].removesuffix("×")) > 10), r


UNITS = {"predicted", "lower", "upper", "mae", "max_error", "coverage", "extrapolation", "k", "k_lower", "k_upper",
         "compute_flops", "params", "tokens", "lofo_mae", "baseline_mae", "noise"}


def test_headers_carry_units_and_multiples_their_sign(built):
    """Every header of a column with a unit names it ("mae (points)"); fractions and points are told
    apart; an extrapolation prints as a multiple ("2.53×") of the family's largest compute."""
    tables = html_tables((built[1] / "index.html").read_text())
    glance = tables[0]["head"]
    for want in ("predicted (accuracy, 0–1)", "mae (points)", "n (held-out predictions)",
                 "coverage (share of held-out values in the 90% interval)",
                 "extrapolation (× the family's largest compute)"):
        assert want in glance, glance
    assert glance[:5] == ["target", "task"] + [f"{c} (accuracy, 0–1)" for c in ("predicted", "lower", "upper")]
    for r in _glance(built):
        assert r["extrapolation"].endswith("×") and float(r["extrapolation"][:-1]) > 0, r
    for t in tables:
        for h in t["head"]:
            if column(h) in UNITS:
                assert h != column(h), f"{t['source']}: header {h!r} names no unit"


def test_the_answer_per_target_matches_the_glance_csv(built):
    """One sentence per target before "At a glance": each task's forecast, interval, method and that
    method's held-out error, every number a cell of at_a_glance.csv."""
    md = (built[1] / "forecast.md").read_text()
    assert md.index("## The answer") < md.index("## At a glance")
    block = md[md.index("## The answer"):md.index("## At a glance")]
    bullets = [line[2:] for line in block.splitlines() if line.startswith("- ")]
    glance = _source(built, "at_a_glance.csv")
    assert len(bullets) == glance["target"].nunique()
    clause = re.compile(r"(\S+) (\S+) \((\d+)%: (\S+)–(\S+)\) by (\S+), which (?:erred (\S+) points on "
                        r"(?:this family's held-out models|them) \(n=(\d+)\)|no backtest has scored)")
    seen = 0
    for b, (target, g) in zip(bullets, glance.groupby("target", sort=False)):
        assert b.startswith(f"{target}: ") and b.endswith("."), b
        found = clause.findall(b)
        assert [f[0] for f in found] == g["task"].tolist(), b
        for (task, pred, pct, lo, hi, method, mae, n), (_, r) in zip(found, g.iterrows()):
            assert _matches(pred, r["predicted"]) and _matches(lo, r["lower"]) and _matches(hi, r["upper"]), b
            assert method == r["method"] and int(pct) == round(100 * r["level"]), b
            assert (_matches(mae, r["mae"]) and n == str(int(r["n"]))) if mae else r["n"] == 0, b
            seen += 1
    assert seen == len(glance)
    assert "by auto, which erred" in block
    for note in glance["note"].dropna():  # every caveat is said in the sentence too
        assert f"[{note}]" in block, note


def test_glance_shows_the_default_with_its_record_on_same_family_heldout_predictions(built):
    """Each row of the at-a-glance table shows the configured default method (never one picked on the
    held-out values), and its n, MAE and coverage follow from the backtest_predictions.csv rows of the
    target's own family (the target's suite first), and from no other family's."""
    from pipeline import params

    default = params.load("report", ROOT / "params.yaml")["default_method"]
    fc, pr = _source(built, "forecast.csv"), _source(built, "backtest_predictions.csv")
    checked = 0
    for r in _glance(built):
        f = fc[(fc["target"] == r["target"]) & (fc["task"] == r["task"]) & fc["predicted"].notna()]
        assert r["method"] == (default if default in set(f["method"]) else f["method"].iloc[0]), r
        if r["method"] == "auto":
            assert r["evidence"].startswith("auto: the candidates weighted by what "), r
        fam, suite, metric = f["family"].iloc[0], f["suite"].iloc[0], f["metric"].iloc[0]
        rows = pr[(pr["family"] == fam) & (pr["task"] == r["task"]) & (pr["metric"] == metric)
                  & (pr["method"] != "link") & pr["predicted"].notna() & pr["actual"].notna()]
        here = rows[rows["suite"] == suite]
        r["flags"] = r["flags"].replace(report.DASH, "")
        if here.empty:
            assert f"no backtest holds out {fam} in {suite}" in r["evidence"] or \
                f"no backtest holds out {fam} in this suite" in r["evidence"], r
            assert "no same-family backtest in this suite" in r["flags"], r
        use = here if len(here) else rows
        mine = use[use["method"] == r["method"]]
        if mine.empty and len(here):  # the shown method held out in another suite only: its record from there
            mine = rows[rows["method"] == r["method"]]
            assert mine.empty or f"no backtest holds out {fam} in {suite} with {r['method']}" in r["evidence"], r
        if mine.empty:
            assert r["n"] == "0" and r["mae"] == report.DASH, r
            continue
        err = (mine["predicted"] - mine["actual"]).abs() * 100
        cov = ((mine["actual"] >= mine["lower"]) & (mine["actual"] <= mine["upper"])).mean()
        assert r["n"] == str(len(mine)) and r["mae"] == report.fmt(float(err.mean())) \
            and r["coverage"] == report.fmt(float(cov)), r
        assert f"erred {float(err.mean()):.3g} points (n={len(mine)}" in r["evidence"], r
        level = 0.9
        floor = level - 2 * math.sqrt(level * (1 - level) / len(mine))
        assert ("below the stated 0.9 by more than its binomial noise" in r["flags"]) == (cov < floor), r
        checked += 1
    assert checked >= 10


def test_family_sentences_match_offsets(built):
    text = (built[1] / "forecast.md").read_text()
    off = _source(built, "family_offsets.csv")
    said = re.findall(r"- (\S+) reaches (\S+)'s capability at (\S+)× the compute \((\S+) interval (\S+) to (\S+); "
                      r"suite (\S+),", text)
    others = off[off["family"] != off["reference"]]
    assert len(said) == len(others) > 0
    for fam, ref, k, level, lo, hi, suite in said:
        row = others[(others["family"] == fam) & (others["reference"] == ref) & (others["suite"] == suite)].iloc[0]
        assert (k, level, lo, hi) == tuple(report.fmt(float(row[c])) for c in ("k", "level", "k_lower", "k_upper"))
        assert row["k_lower"] <= row["k"] <= row["k_upper"]


# ------------------------------------------------------------------------------- the page
def test_page_is_self_contained(built):
    text = (built[1] / "index.html").read_text()
    p = _Tables()
    p.feed(text)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert not re.search(r"url\(|@import|https?://", text), "no external reference of any kind"
    for tag, attr, url in p.urls:
        assert url.startswith("#") or url.startswith("data:"), (tag, attr, url[:80])
    assert len(p.imgs) >= 8
    for img in p.imgs:
        assert img.get("alt"), "every image has alt text"
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    md = (built[1] / "forecast.md").read_text()
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (built[1] / rel).is_file(), rel


# ------------------------------------------------------------------------------- plots
def _check_axes(fig, accuracy: bool = True, legend: bool = True):
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
        if ax.get_xscale() == "log":
            assert "log scale" in ax.get_xlabel() and re.search(r"FLOPs|parameters|tokens", ax.get_xlabel())
        if accuracy:
            assert any(line.get_label() == "chance" for line in ax.get_lines()), f"no chance line: {ax.get_title()}"
    if legend:
        assert fig.legends or all(ax.get_legend() for ax in axes)


@pytest.fixture(scope="module")
def inputs(built):
    return report.load_inputs(built[2], built[0])


def test_plots_have_labelled_log_axes_legends_and_chance(inputs):
    from pipeline import params

    cfg = params.load("report", ROOT / "params.yaml")
    figs = []
    report_cfg = report_stage.config_from_params(ROOT / "params.yaml")
    fig = report.plot_accuracy_vs_compute(inputs.scores, cfg, None)
    _check_axes(fig)
    assert all(ax.get_xscale() == "log" for ax in fig.axes if ax.get_visible())
    figs.append(fig)
    c = cfg["family_curves"][0]
    fig = report.plot_family_curves(inputs.scores, c["suite"], c["families"], c["metric"], c["num_fewshot"], None)
    _check_axes(fig)
    assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), "one legend for the grid"
    legend_labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert set(c["families"]) <= legend_labels, "legend by family"
    figs.append(fig)
    fig = report.plot_family_capability(inputs.capability, inputs.offsets, None)
    _check_axes(fig, accuracy=False)
    figs.append(fig)
    chosen, evidence = report.choose_methods(inputs, report_cfg)
    for target in inputs.forecast["target"].unique():
        fig = report.plot_target(inputs, target, chosen[chosen["target"] == target], None, None)
        _check_axes(fig)
        assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) <= 9, "one short legend"
        figs.append(fig)
    if inputs.trends is not None and inputs.trends["label"].isin(report.FLAGGED).any():
        flagged = inputs.trends[inputs.trends["label"].isin(report.FLAGGED)].head(4)
        fig = report.plot_trend_curves(inputs, flagged, 4, None)
        _check_axes(fig, accuracy=False)
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes), "one legend for the grid"
        figs.append(fig)
    if inputs.predictions is not None:
        split = inputs.predictions["split"].iloc[0]
        fig = report.plot_heldout(inputs, split, None)
        _check_axes(fig, accuracy=False)
        figs.append(fig)
    for fig in figs:
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_visible() and ax.get_xscale() == "log":
                lo, hi = ax.get_xlim()
                shown = [t for t in ax.xaxis.get_majorticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
                assert len(shown) >= 2, f"{ax.get_title()}: {[t.get_text() for t in shown]} on a log axis"
        report.plotting.plt.close(fig)


def test_family_and_method_colours_never_collide():
    from pipeline.report import plotting

    methods = {plotting.method_color(m) for m in list(plotting.METHOD_COLORS) + ["direct", "skills", "my_law", "x"]}
    families = {plotting.family_color(f) for f in list(plotting.FAMILY_COLORS) + [f"user-{i}" for i in range(60)]
                + ["my-runs", "olmo", "gpt-neox"]}
    assert not methods & families


# ------------------------------------------------------------------------------- browser
CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0, bad = [];
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0 && imgs[i].naturalHeight > 0) ok++; else bad.push(i);
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-rendered', ok);
  document.body.setAttribute('data-broken', bad.join(','));
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000"]


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (tests/setup_browser.sh installs it "
                                                "with apt where it may; `make test` runs it)")
def test_page_renders_in_headless_chromium_without_network(built, tmp_path):
    """Open index.html from disk: every image decodes; the page makes no network request.

    The page has no script of its own; a copy with a small checker script appended (it records
    how many images decoded on the <body>) is what Chromium opens with --dump-dom.  The net log
    of that run must hold no request started by the page (initiator other than the browser
    itself) for anything but file: or data: URLs; --host-resolver-rules makes sure nothing could
    leave anyway.  A second run takes a screenshot of the unmodified page.
    """
    chromium = _chromium()
    page = tmp_path / "index.html"
    text = (built[1] / "index.html").read_text()
    page.write_text(text.replace("</body>", CHECK + "</body>"))
    netlog = tmp_path / "net.json"
    res = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile1'}", f"--log-net-log={netlog}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body, res.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', body.group(1)))
    n_img = text.count("<img ")
    assert int(attrs["data-images"]) == n_img > 0
    assert int(attrs["data-rendered"]) == n_img, f"broken images: {attrs['data-broken']}"

    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    requests = [e["params"] for e in log["events"]
                if names.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in e.get("params", {})]
    from_page = [r["url"] for r in requests if r.get("initiator") != "not an origin"
                 and not r["url"].startswith(("file:", "data:"))]
    assert from_page == [], f"the page requested {from_page}"

    shot = tmp_path / "screenshot.png"
    res = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1400,2200",
                          f"--screenshot={shot}", (built[1] / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    keep = os.environ.get("CAPCAST_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


WIDTH = """<script>
window.addEventListener('load', function () {
  var t = document.querySelector('table[data-source="at_a_glance.csv"]'), box = t.parentElement;
  document.body.setAttribute('data-table', t.scrollWidth + ' ' + t.clientWidth);
  document.body.setAttribute('data-box', box.scrollWidth + ' ' + box.clientWidth);
  document.body.setAttribute('data-page', document.documentElement.scrollWidth + ' '
                             + document.documentElement.clientWidth);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed (tests/setup_browser.sh installs it "
                                                "with apt where it may; `make test` runs it)")
def test_glance_reads_at_1400_pixels_without_horizontal_scroll(built, tmp_path):
    """At a window 1400 px wide, "At a glance" fits: neither the table, nor the box it scrolls in,
    nor the page is wider than what shows."""
    page = tmp_path / "index.html"
    page.write_text((built[1] / "index.html").read_text().replace("</body>", WIDTH + "</body>"))
    res = subprocess.run([_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', re.search(r"<body([^>]*)>", res.stdout).group(1)))
    for key in ("data-table", "data-box", "data-page"):
        scroll, client = map(int, attrs[key].split())
        assert client > 0 and scroll <= client, f"{key}: scrollWidth {scroll} > clientWidth {client} at 1400 px"


# ------------------------------------------------------------------------------- method choice
def _tiny_inputs():
    """Family f in suite A: method x is better on f's held-out models, y on g's (g has more of them)."""
    def row(family, model):
        return {"suite": "A", "model": model, "family": family, "params": 1e9, "tokens": 1e10,
                "compute_flops": 6e19, "step": pd.NA, "task": "piqa", "metric": "acc", "value": 0.5,
                "stderr": 0.01, "num_fewshot": 0, "source": "test"}

    from pipeline import scores

    table = scores.validate(pd.DataFrame([row("f", "f1"), row("g", "g1")]))
    pred = []
    for split, fam, models, err in (("s1", "f", ["f1"], {"x": 0.01, "y": 0.05}),
                                    ("s1", "g", ["g1", "g2", "g3"], {"x": 0.2, "y": 0.0}),
                                    ("s2", "f", ["f1"], {"x": 0.02})):
        for mod in models:
            for m, e in err.items():
                pred.append({"split": split, "fold": split, "method": m, "task": "piqa", "metric": "acc", "suite": "A",
                             "model": mod, "family": fam, "step": np.nan, "compute_flops": 6e19, "actual": 0.5,
                             "predicted": 0.5 + e, "lower": 0.45, "upper": 0.55})
    forecast = pd.DataFrame([{"target": "T", "family": fam, "suite": suite, "task": "piqa", "metric": "acc",
                              "method": m, "predicted": 0.7, "lower": 0.6, "upper": 1.0, "level": 0.9,
                              "compute_flops": 6e21, "num_fewshot": 0}
                             for fam, suite in (("f", "A"),) for m in ("y", "x")])
    return report.ReportInput(scores=table, predictions=pd.DataFrame(pred), forecast=forecast)


def test_the_method_shown_is_the_default_and_its_record_counts_only_the_targets_own_family():
    inp = _tiny_inputs()
    chosen, evidence = report.choose_methods(inp, report.ReportConfig(default_method="x"))
    row = chosen.iloc[0]
    # x's record on f's own held-out models (g's three never count)
    assert row["method"] == "x" and row["n"] == 2 and row["mae"] == pytest.approx(1.5) and row["coverage"] == 1
    assert row["rule"].startswith("x: the configured default (report.default_method); on this family's held-out "
                                  "models it erred 1.5 points (n=2")
    ev = evidence.set_index("method")
    assert ev.loc["y", "n"] == 1 and set(evidence["family"]) == {"f"} and ev.loc["x", "shown"] == "★"
    assert ev.loc["x", "median_width"] == pytest.approx(10) and ev.loc["x", "interval_score"] == pytest.approx(10)
    glance = report.glance_table(inp, chosen, report.ReportConfig())
    assert glance["flags"].iloc[0] == "interval reaches 1; 100× the largest f model's compute; thin evidence: " \
                                      "2 held-out predictions"
    assert glance["note"].iloc[0] == "extrapolation: 100× the family's largest compute"
    # y did better on nothing and worse on f's models, yet it is shown where it is the default: nothing is picked
    chosen, _ = report.choose_methods(inp, report.ReportConfig(default_method="y"))
    assert chosen["method"].tolist() == ["y"] and chosen["mae"].iloc[0] == pytest.approx(5)
    chosen, _ = report.choose_methods(inp, report.ReportConfig())  # no default: the first forecast method
    assert chosen["method"].tolist() == ["y"]


def test_flags_say_low_coverage_a_missed_backtest_a_wide_interval_and_interpolation():
    from pipeline import scores

    table = scores.validate(pd.DataFrame([{"suite": "A", "model": f"f{i}", "family": "f", "params": 1e9 * (i + 1),
                                           "tokens": 1e10, "compute_flops": 6e19 * (i + 1), "step": pd.NA,
                                           "task": "piqa", "metric": "acc", "value": 0.6, "stderr": 0.005,
                                           "num_fewshot": 0, "source": "test"} for i in range(3)]))
    pred = [{"split": "s", "fold": "s", "method": m, "task": "piqa", "metric": "acc", "suite": "A", "model": f"h{i}",
             "family": "f", "step": np.nan, "compute_flops": 6e19, "actual": 0.6, "stderr": 0.005,
             "predicted": 0.6 + e + 0.002 * i, "lower": 0.6 + e - 0.03, "upper": 0.6 + e + 0.03}
            for i in range(10) for m, e in (("auto", 0.1), ("line_final", 0.01), ("line_frontier", 0.02))]
    forecast = pd.DataFrame([{"target": "T", "family": "f", "suite": "A", "task": "piqa", "metric": "acc",
                              "method": "auto", "predicted": 0.7, "lower": 0.52, "upper": 0.99, "level": 0.9,
                              "compute_flops": 1e20, "num_fewshot": 0, "caveats": "no rise: flat"}])
    inp = report.ReportInput(scores=table, predictions=pd.DataFrame(pred), forecast=forecast)
    cfg = report.ReportConfig(default_method="auto", backtest_level=0.9)
    chosen, evidence = report.choose_methods(inp, cfg)
    flags = report.glance_table(inp, chosen, cfg)["flags"].iloc[0]
    assert "interval spans 94% of [chance, 1]: the ladder has not risen from chance" in flags, flags
    assert "interpolation: the target lies inside the ladder" in flags
    assert "coverage 0.00 on 10 held-out predictions, below the stated 0.9 by more than its binomial noise" in flags
    assert "missed its backtest: MAE 10.9 points against line_final's 1.9 on the same 10 held-out predictions" in flags
    assert report.glance_table(inp, chosen, cfg)["note"].iloc[0] == "no rise: flat; interpolation: inside the ladder's compute"
    assert set(evidence["method"]) == {"auto", "line_final", "line_frontier"}
    # a bigger model inside the ladder's compute: the forecast's words, not "interpolation"
    words = "inside the training runs' compute, but N 3x the largest training model's: a run the ladder does not hold"
    inp.forecast = forecast.assign(extrapolation=words)
    chosen, _ = report.choose_methods(inp, cfg)
    glance = report.glance_table(inp, chosen, cfg).iloc[0]
    assert words in glance["flags"] and "interpolation" not in glance["flags"]
    assert glance["note"] == f"no rise: flat; {words}"


def test_method_choice_takes_new_methods_and_columns():
    inp = _tiny_inputs()
    inp.predictions = inp.predictions.drop(columns="fold").assign(form="power", inner_error=0.1)
    inp.predictions.loc[inp.predictions["method"] == "y", "method"] = "direct"
    inp.forecast.loc[inp.forecast["method"] == "y", "method"] = "direct"
    chosen, evidence = report.choose_methods(inp, report.ReportConfig(default_method="x"))
    assert chosen["method"].tolist() == ["x"] and set(evidence["method"]) == {"x", "direct"}


def test_method_choice_says_when_no_backtest_holds_the_family_out():
    inp = _tiny_inputs()
    inp.predictions = inp.predictions.assign(suite="B")
    chosen, _ = report.choose_methods(inp, report.ReportConfig())
    assert "no backtest holds out f in A; evidence from f held out in B" in chosen["rule"].iloc[0]
    inp.predictions = inp.predictions[inp.predictions["family"] == "g"]
    chosen, evidence = report.choose_methods(inp, report.ReportConfig(default_method="x"))
    assert chosen["method"].tolist() == ["x"] and chosen["n"].tolist() == [0] and evidence.empty
    assert "no backtest holds out f in this suite or another" in chosen["rule"].iloc[0]


def test_report_builds_from_a_scores_table_and_forecast_alone(tmp_path):
    """No params.yaml, no backtests, trends or family comparison: every section still renders."""
    inp = _tiny_inputs()
    inp.predictions = None
    report.write(inp, report.ReportConfig(), tmp_path)
    text = (tmp_path / "index.html").read_text()
    assert 'id="glance"' in text and "backtest.csv is missing" in text
    glance = pd.read_csv(tmp_path / "at_a_glance.csv")
    assert glance["method"].tolist() == ["y"] and "no backtest predictions" in glance["evidence"].iloc[0]


def test_the_best_mark_is_among_methods_scored_on_the_same_predictions_and_checkpoints_are_model_steps():
    import pandas as pd

    from pipeline.report import sections

    bt = pd.DataFrame({"split": ["a", "a", "a", "b"], "method": ["x", "y", "z", "x"], "n": [2, 1, 2, 3],
                       "mae": [3.0, 1.0, 2.0, 5.0]})
    assert list(sections.best_marks(bt, ["split"])) == ["", "", "★", "★"]  # y's 1.0 is on one prediction of two
    table = pd.DataFrame({"suite": "s", "family": "f", "model": ["m1", "m1", "m2", "m2"], "step": [1, 2, 1, 1],
                          "task": ["t", "t", "t", "u"], "value": 0.5})
    assert sections.data_summary(table)["checkpoints"].tolist() == [3]
