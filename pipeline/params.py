"""params.yaml access: every stage reads its own section from here (no other hidden knobs).

The whole file is checked against the schema (:mod:`pipeline.config`) when it is read, so a
typo anywhere stops a stage before it fits anything, with the path of the bad key.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.errors import CapcastError


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps
    the last silently: a copied split would replace the one above it)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges; its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise DuplicateKey(key, seen[key], key_node.start_mark.line + 1)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
        return super().construct_mapping(node, deep)


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, first: int, again: int):
        super().__init__(f"line {again}: key {key!r} is given twice in the same mapping (first at line {first}); "
                         "YAML would keep only the last: rename or remove one")


def load_yaml(text: str):
    """YAML text -> Python objects (safe: no tags that construct objects), refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader subclass)


def read(path: str | Path = "params.yaml") -> dict:
    """The whole params file, checked (:func:`pipeline.config.check`)."""
    from pipeline import config

    path = Path(path)
    try:
        params = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcastError(f"{path}: not found; run stages from the repository root") from None
    except UnicodeDecodeError as exc:
        raise CapcastError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except DuplicateKey as exc:
        raise CapcastError(f"{path}: {exc}") from None
    except RecursionError:
        raise CapcastError(f"{path}: nested too deeply to read; flatten it") from None
    except yaml.YAMLError as exc:
        raise CapcastError(f"{path}: malformed YAML ({' '.join(str(exc).split())})") from None
    params = {} if params is None else params
    config.check(params, str(path))
    return params


def load(section: str, path: str | Path = "params.yaml") -> dict:
    return section_of(read(path), section, path)


def section_of(params: dict, section: str, path: str | Path = "params.yaml") -> dict:
    """One section of a params file already read (:func:`read`); a one-line error where it is absent."""
    if section not in params:
        raise CapcastError(f"{path}: no '{section}:' section")
    return params[section] or {}
