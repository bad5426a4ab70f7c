"""params.yaml access: every stage reads its own section from here (no other hidden knobs)."""
from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import CapcastError


def load(section: str, path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise CapcastError(f"{path}: not found; run stages from the repository root") from None
    except yaml.YAMLError as exc:
        raise CapcastError(f"{path}: malformed YAML ({exc})") from None
    if section not in params:
        raise CapcastError(f"{path}: no '{section}:' section")
    return params[section] or {}
