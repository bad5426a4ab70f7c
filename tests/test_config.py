"""The params.yaml schema (pipeline/config.py): every typo or bad value stops before any fit,
with the file, the path of the key and the fix, on one line."""
from __future__ import annotations

import copy
from typing import Literal

import pytest
import yaml

from pipeline import config, params
from pipeline.config import ConfigError
from pipeline.forecasting import backtest
from pipeline.stages import backtest as backtest_stage
from tests.paths import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def bad(mutate, path="params.yaml"):
    p = copy.deepcopy(PARAMS)
    mutate(p)
    with pytest.raises(ConfigError) as err:
        config.check(p, path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")
    return msg


def split(p, name="pythia_size"):
    return p["backtest"]["splits"][name]


def test_the_committed_params_pass():
    config.check(PARAMS)
    assert params.load("backtest", ROOT / "params.yaml")["splits"]


@pytest.mark.parametrize("mutate, message", [
    # issue case 4: config typos used to exit 0
    (lambda p: split(p)["methods"].__setitem__(0, "two_stpe"),
     "backtest.splits.pythia_size.methods[0]: unknown method 'two_stpe'; did you mean 'two_step'?"),
    (lambda p: split(p)["options"]["two_step"].__setitem__("lossx", "a:b"),
     "backtest.splits.pythia_size.options.two_step.lossx: unknown option of two_step; did you mean 'loss'?"),
    (lambda p: split(p).__setitem__("tset", "params > 1"),
     "backtest.splits.pythia_size.tset: unknown split key; did you mean 'test'?"),
    (lambda p: split(p)["options"].__setitem__("sigmod", {}),
     "backtest.splits.pythia_size.options.sigmod: unknown method 'sigmod'; did you mean 'sigmoid'?"),
    (lambda p: p["backtest"]["options"].__setitem__("loglinear", {"floor": "chance"}),
     "backtest.options.loglinear.floor: unknown option of loglinear"),
    (lambda p: split(p, "obsscaling_cutoff")["target_options"].__setitem__("arithmetic_3dx:acc", {}),
     "target_options.arithmetic_3dx:acc: not one of this split's targets; did you mean 'arithmetic_3ds:acc'?"),
    (lambda p: split(p, "three_families_lofo").__setitem__("leave_out", "famly"),
     "three_families_lofo.leave_out: unknown value 'famly'; did you mean 'family'?"),
    (lambda p: split(p, "three_families_lofo").__setitem__("test", "params > 1"),
     "three_families_lofo.test: belongs to a train/test split (not with leave_out)"),
    # issue case 8: these were KeyErrors and numpy tracebacks
    (lambda p: split(p).pop("test"), "backtest.splits.pythia_size: missing 'test'"),
    (lambda p: split(p).pop("targets"), "backtest.splits.pythia_size: missing 'targets'"),
    (lambda p: p["backtest"].__setitem__("n_bootstrap", -5), "backtest.n_bootstrap: must be >= 0 and <= 10000, got -5"),
    (lambda p: p["backtest"].__setitem__("n_bootstrap", 2.5), "backtest.n_bootstrap: must be a whole number >= 0 and <= 10000, got 2.5"),
    (lambda p: p["backtest"].__setitem__("n_bootstrap", "lots"), "backtest.n_bootstrap: must be a whole number >= 0 and <= 10000, got 'lots'"),
    (lambda p: p["backtest"].__setitem__("level", 90), "backtest.level: must be > 0 and < 1, got 90; a fraction (0.9, not 90)"),
    (lambda p: split(p)["options"]["two_step"].__setitem__("n_bootstrap", -1),
     "options.two_step.n_bootstrap: must be >= 0 and <= 10000, got -1"),
    (lambda p: split(p)["options"]["two_step"].__setitem__("skip_fraction", "a"),
     "options.two_step.skip_fraction: must be a number >= 0 and < 1, got 'a'"),
    (lambda p: split(p).__setitem__("train", "parms <= 1.5e9"),
     "backtest.splits.pythia_size.train: 'parms <= 1.5e9': unknown column 'parms'; did you mean 'params'?"),
    (lambda p: split(p).__setitem__("train", "params > 0 or @pd.io.common.os.system('true') == 0"),
     "backtest.splits.pythia_size.train: \"params > 0 or @pd.io.common.os.system('true') == 0\": '@' (local "
     "variables) is not allowed"),
    (lambda p: split(p).__setitem__("targets", ["arc_easy"]), "targets[0]: 'arc_easy' is not TASK:METRIC"),
    # every other section
    (lambda p: p.__setitem__("bactest", {}), "bactest: unknown section; did you mean 'backtest'?"),
    (lambda p: p["trends"].__setitem__("tau_trnd", 1), "trends.tau_trnd: unknown key; did you mean 'tau_trend'?"),
    (lambda p: p["trends"].__setitem__("interval", 90), "trends.interval: must be > 0 and < 1, got 90"),
    (lambda p: p["trends"].__setitem__("bootstrap", -1), "trends.bootstrap: must be >= 0 and <= 10000, got -1"),
    (lambda p: p["trends"]["emergence"].__setitem__("n_pcs", "x"), "trends.emergence.n_pcs: must be a whole number"),
    (lambda p: p["trends"]["backtest"][0].pop("train"), "trends.backtest[0]: missing 'train'"),
    (lambda p: p["trends"]["backtest"][0].__setitem__("universe", "family.upper() == 'X'"),
     "trends.backtest[0].universe: \"family.upper() == 'X'\": function calls not allowed"),
    (lambda p: p["report"].__setitem__("heldout_splits", ["pythia_sze"]),
     "report.heldout_splits[0]: no split 'pythia_sze' in backtest.splits; did you mean 'pythia_size'?"),
    (lambda p: p["report"].__setitem__("default_method", "twostep"), "report.default_method: unknown method 'twostep'"),
    (lambda p: p["report"].__setitem__("processes", 0), "report.processes: must be >= 1, got 0"),
    (lambda p: p["forecast"]["targets"][0].__setitem__("params", "big"), "forecast.targets[0].params: must be a number > 0"),
    (lambda p: p["forecast"]["targets"][0].__setitem__("tokns", 1), "forecast.targets[0].tokns: unknown key; did you mean 'tokens'?"),
    (lambda p: p["forecast"].__setitem__("methods", ["two_step", "sigmod"]), "forecast.methods[1]: unknown method 'sigmod'"),
    (lambda p: p["forecast"].__setitem__("interval", 1.0), "forecast.interval: must be > 0 and < 1, got 1.0"),
    (lambda p: p["evaluate"].__setitem__("num_fewshot", -1), "evaluate.num_fewshot: must be >= 0, got -1"),
    (lambda p: p["evaluate"].__setitem__("batch_size", "abc"), "evaluate.batch_size: 'abc'"),
    (lambda p: p["evaluate"].__setitem__("device", "nosuch"), "evaluate.device: 'nosuch'"),
    (lambda p: p["evaluate"].__setitem__("models", [{"model": "foo/bar"}]),
     "evaluate.models[0]: 'foo/bar' is not in the families registry"),
    (lambda p: p["collect"].__setitem__("published", 3), "collect.published: must be text, got 3"),
])
def test_bad_keys_and_values_name_the_path(mutate, message):
    assert message in bad(mutate)


def test_methods_and_options_come_from_the_laws_at_run_time(monkeypatch):
    """A law added to METHODS (with its own options) is accepted without editing the schema."""
    from pipeline import laws

    class Direct(laws.LogLinear):
        def __init__(self, target, form: str = "power", step1_rows=None,
                     loss_form: Literal["auto", "NxD", "C"] | None = None, n_bootstrap: int = 200,
                     level: float = 0.9, random_state: int = 0):
            super().__init__(target, n_bootstrap=n_bootstrap, level=level, random_state=random_state)
            self.form, self.step1_rows, self.loss_form = form, step1_rows, loss_form

    monkeypatch.setitem(laws.METHODS, "direct", Direct)
    p = copy.deepcopy(PARAMS)
    split(p)["methods"].append("direct")
    split(p)["options"]["direct"] = {"form": "exp", "step1_rows": "params < 1e9"}
    config.check(p)
    split(p)["options"]["direct"]["form"] = 3
    with pytest.raises(ConfigError, match=r"options\.direct\.form: must be text, got 3"):
        config.check(p)
    split(p)["options"]["direct"] = {"loss_form": "NxD"}
    config.check(p)
    split(p)["options"]["direct"] = {"loss_form": "NxC"}
    with pytest.raises(ConfigError, match=r"options\.direct\.loss_form: unknown value 'NxC'; did you mean 'NxD'\?"):
        config.check(p)


def test_a_new_split_key_is_one_entry_in_the_table(monkeypatch):
    monkeypatch.setitem(config.SPLIT_KEYS, "keep_smallest", config.SplitKey(config.Int(ge=1), "leave_out"))
    p = copy.deepcopy(PARAMS)
    split(p, "three_families_lofo")["keep_smallest"] = 2
    config.check(p)
    split(p, "three_families_lofo")["keep_smallest"] = 0
    with pytest.raises(ConfigError, match="keep_smallest: must be >= 1, got 0"):
        config.check(p)
    split(p)["keep_smallest"] = 2
    with pytest.raises(ConfigError, match="pythia_size.keep_smallest: belongs to a leave_out split"):
        config.check(p)


def test_the_stage_stops_before_any_fit(tmp_path, monkeypatch, capsys):
    p = copy.deepcopy(PARAMS)
    split(p, "three_families")["methods"] = ["observational", "two_stpe"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(backtest, "run_law", lambda *a, **k: pytest.fail("a law was fitted"))
    assert backtest_stage.main([]) == 2
    err = capsys.readouterr().err
    assert err == ("error: params.yaml: backtest.splits.three_families.methods[1]: unknown method 'two_stpe'; "
                   "did you mean 'two_step'?\n")


def test_trends_reads_its_section_through_the_schema(tmp_path):
    from pipeline.stages import trends as trends_stage

    p = copy.deepcopy(PARAMS)
    p["trends"]["level"] = 0.9
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"trends\.level: unknown key"):
        trends_stage.load_config(path)
    from pipeline.errors import CapcastError

    with pytest.raises(CapcastError, match=r"--params-file .*nope\.yaml: not found"):  # named, not the defaults
        trends_stage.load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, message", [
    (b"backtest: {n_bootstrap: 3\n", "malformed YAML"),
    (b"\xff\xfe garbage", "not UTF-8 text"),
    (b"- just\n- a list\n", "must be a mapping of sections"),
])
def test_unreadable_params_files_are_one_line(tmp_path, text, message):
    from pipeline.errors import CapcastError

    path = tmp_path / "params.yaml"
    path.write_bytes(text)
    with pytest.raises(CapcastError) as err:
        params.load("backtest", path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_backtest_cli_flags_get_the_same_checks(tmp_path, capsys):
    import pandas as pd

    from tests.test_laws import ladder_rows

    path = tmp_path / "t.csv"
    ladder_rows(noise=0.002).to_csv(path, index=False)
    base = ["--scores", str(path), "--method", "loglinear", "--target", "arc_easy:acc",
            "--train", "params <= 2e9", "--test", "params > 2e9"]
    for extra, message in ((["--bootstrap", "-5"], "--bootstrap: must be >= 0 and <= 10000, got -5"),
                           (["--level", "90"], "--level: must be > 0 and < 1, got 90.0"),
                           (["--set", "skip_fractoin=0.2"], "--set skip_fractoin: unknown option of loglinear; "
                                                            "did you mean 'skip_fraction'?")):
        assert backtest_stage.main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert pd.read_csv(path).shape[0] > 0
