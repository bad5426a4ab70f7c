"""params.yaml access: every stage reads its own section from here (no other hidden knobs).

The whole file is checked against the schema (:mod:`pipeline.config`) when it is read, so a
typo anywhere stops a stage before it fits anything, with the path of the bad key.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import CapcastError


def read(path: str | Path = "params.yaml") -> dict:
    """The whole params file, checked (:func:`pipeline.config.check`)."""
    from pipeline import config

    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcastError(f"{path}: not found; run stages from the repository root") from None
    except UnicodeDecodeError as exc:
        raise CapcastError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise CapcastError(f"{path}: malformed YAML ({' '.join(str(exc).split())})") from None
    params = {} if params is None else params
    config.check(params, str(path))
    return params


def load(section: str, path: str | Path = "params.yaml") -> dict:
    params = read(path)
    if section not in params:
        raise CapcastError(f"{path}: no '{section}:' section")
    return params[section] or {}
