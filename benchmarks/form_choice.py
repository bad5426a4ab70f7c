"""How the nested choice of a two-step law's form compares with fixed forms, split by split.

Runs the backtest stage's two_step splits (params.yaml, backtest:) with point fits only
(n_bootstrap 0) under each variant: the automatic choice (one-standard-error rule), the choice by
plain arg-min of the inner error, each link form fixed, step 1 fixed, and a free ceiling the
training points do not identify kept as a sigmoid (instead of the line); prints the MAE table (points) that
docs/laws.md quotes.  Needs data/scores.parquet (dvc repro).  About 2 minutes on 2 cores.

    python benchmarks/form_choice.py
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from pipeline import scores  # noqa: E402
from pipeline.forecasting.backtest import run_split  # noqa: E402
from pipeline.laws import nested  # noqa: E402

VARIANTS = {  # name: (two_step options, margin of the choice)
    "auto (one-SE rule)": ({}, 1.0),
    "auto, plain arg-min": ({}, 0.0),
    "fixed log_logistic": ({"form": "log_logistic"}, 1.0),
    "fixed hill": ({"form": "hill"}, 1.0),
    "fixed bhagia": ({"form": "bhagia"}, 1.0),
    "fixed gadre": ({"form": "gadre"}, 1.0),
    "auto, step 1 fixed free/all": ({"step1_rows": "all", "loss_floor": "free"}, 1.0),
    "auto, unidentified shape kept": ({"unidentified": "keep"}, 1.0),
}


def main() -> None:
    warnings.filterwarnings("ignore")
    cfg = yaml.safe_load(Path("params.yaml").read_text())["backtest"]
    cfg["n_bootstrap"] = 0
    table = scores.read(cfg.get("scores", "data/scores.parquet"))
    splits = {k: v for k, v in cfg["splits"].items() if "two_step" in v["methods"]}
    choose, out = nested.choose, {}
    try:
        for name, (options, margin) in VARIANTS.items():
            nested.choose = lambda s, sp, _m=margin: choose(s, sp, _m)
            for split_name, split in splits.items():
                own = {**(split.get("options") or {}).get("two_step", {}), **options}
                split = dict(split, methods=["two_step"], options={"two_step": own})
                with contextlib.redirect_stdout(io.StringIO()):
                    pred, _ = run_split(table, split_name, split, cfg, log=lambda *_: None)
                out.setdefault(name, {})[split_name] = float(np.mean(np.abs(pred["predicted"] - pred["actual"]))) * 100
    finally:
        nested.choose = choose
    df = pd.DataFrame(out)
    df.loc["mean"] = df.mean()
    print(df.round(2).to_markdown())


if __name__ == "__main__":
    main()
