"""Where capcast writes, and what it may delete.

* :func:`plain_name`: a name that becomes a file or folder name (a backtest split, a checkpoint's
  record) must be plain -- letters, digits, ``_ - . +``, not starting with a dot -- so that it
  can neither leave its folder (``../../x``, ``/abs``) nor hide as a dotfile.
* :func:`check_outputs`: every command that writes checks its output paths before it does any
  work: a file where a file goes (not an existing folder, not below a file), a folder where a
  folder goes, a place it may write, no output named twice and never one of its own inputs.
* :func:`sweep`: an output folder's clean-up deletes only files capcast wrote there, as listed
  in a manifest beside them (a user's notes, another tool's files are left alone).

Every refusal is a :class:`FilesError` (one line naming the path and the fix).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pipeline.errors import CapcastError


class FilesError(CapcastError):
    """An output path or a name that would become one is not safe to write; the message says why.

    ``name`` and ``reason``: for a refused name, the name and why (the params schema prefixes its path)."""

    def __init__(self, message: str, name=None, reason: str = ""):
        super().__init__(message)
        self.name, self.reason = name, reason or message


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def is_plain(name) -> bool:
    """Letters, digits and ``_ - . +``, starting with a letter or digit, with no ``..``."""
    return isinstance(name, str) and bool(_PLAIN.fullmatch(name)) and ".." not in name


_NOT_PLAIN = ("not a plain name: it becomes a file or folder name, so use letters, digits, '_', '-', '.' and '+' "
              "only (no '/', no '..', not starting with '.')")


def plain_name(name, what: str) -> str:
    """``name`` when :func:`is_plain`, else :class:`FilesError` naming ``what`` (``backtest split``, ...)."""
    if not is_plain(name):
        raise FilesError(f"{what} {name!r} is {_NOT_PLAIN}", name, _NOT_PLAIN)
    return name


def check_names(names, what: str = "name") -> None:
    """Every name plain, and no two the same ignoring case (one file or folder on a case-insensitive disk)."""
    seen = {}
    for name in names:
        plain_name(name, what)
        first = seen.setdefault(name.lower(), name)
        if first != name:
            why = f"differs from {first!r} only in case: both would be one folder on a case-insensitive disk; rename one"
            raise FilesError(f"{what} {name!r} {why}", name, why)


def slug(text: str) -> str:
    """A name as the report's file names and anchors write it: lower case, "-" for the rest."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(text).lower()).strip("-").replace("--", "-")


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path, flag: str, folder: bool = False) -> Path:
    """``path`` as an output (a file, or a ``folder``): :class:`FilesError` when it cannot be one."""
    if not folder and isinstance(path, str) and path.endswith(("/", os.sep)):  # Path() would drop the slash
        raise FilesError(f"{flag} {path}: names a folder; give a file name (e.g. {Path(path) / 'out.csv'})")
    path = Path(path)
    if not str(path).strip():
        raise FilesError(f"{flag}: empty path; give a {'folder' if folder else 'file name'}")
    if folder and path.exists() and not path.is_dir():
        raise FilesError(f"{flag} {path}: is a file; give a folder (it is where the outputs go)")
    if not folder and path.is_dir():
        raise FilesError(f"{flag} {path}: is a folder; give a file name (e.g. {path / 'out.csv'})")
    above = path.parent if not folder or not path.exists() else path
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise FilesError(f"{flag} {path}: {above} is a file, not a folder; give a path whose folders are folders")
    if above.exists() and not os.access(above, os.W_OK | os.X_OK):
        raise FilesError(f"{flag} {path}: cannot write in {above} (permission denied); choose another place")
    return path


def check_outputs(outputs, inputs=(), folder_outputs=()) -> None:
    """Check every output (``[(flag, path), ...]``; ``folder_outputs`` the same for folders) with
    :func:`check_output`, that no two are the same file, and that none is an input
    (``[(flag, path), ...]``): a command never writes over what it reads."""
    for flag, p in folder_outputs:
        if p is not None:
            check_output(p, flag, folder=True)
    outs = [(flag, check_output(p, flag)) for flag, p in outputs if p is not None and str(p) != ""]
    for i, (flag, p) in enumerate(outs):
        for other_flag, q in outs[:i]:
            if _same(p, q):
                raise FilesError(f"{flag} {p} is also {other_flag}: two outputs would write the same file; give "
                                 "each its own path")
        for in_flag, q in inputs:
            if q is not None and _same(p, Path(q)):
                raise FilesError(f"{flag} {p} is also the input ({in_flag} {q}): writing it would replace what is "
                                 "read; give another output path")


def check_into(folder, names, flag: str, inputs=()) -> None:
    """:func:`check_outputs` for files ``names`` written into ``folder`` (given as ``flag``)."""
    check_outputs([(flag, Path(folder) / n) for n in names], inputs, [(flag, folder)])


# ------------------------------------------------------------------------------ manifests
MANIFEST = ".written"  # beside the files it lists (one relative path a line)


def read_manifest(folder: Path) -> list[str] | None:
    """The relative paths capcast last wrote under ``folder``; None where it kept no manifest."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise FilesError(f"{path}: unreadable ({exc}); delete it (the next run deletes nothing it did not "
                         "write itself, and writes a new one)") from None


def sweep(folder, written, ours_without_manifest=lambda rel: False) -> list[Path]:
    """Delete the files of ``folder`` that the last run wrote (its manifest) and this one did not
    (``written``: the paths written now); write the new manifest; return what was deleted.

    Without a manifest (a folder from before manifests, or a fresh one) only files for which
    ``ours_without_manifest(relative posix path)`` is true are candidates.  Nothing outside
    ``folder`` is ever touched, and a folder is removed only if a deletion left it empty."""
    from pipeline.scores import atomic_write

    folder = Path(folder)
    root = folder.resolve()
    keep = {Path(p).resolve() for p in written}
    listed = read_manifest(folder)
    if listed is None:
        listed = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()
                  and p.name != MANIFEST and ours_without_manifest(p.relative_to(folder).as_posix())]
    removed = []
    for rel in listed:
        path = (folder / rel)
        real = path.resolve()
        if root not in real.parents or real in keep or not path.is_file() or path.is_symlink():
            continue
        path.unlink()
        removed.append(path)
        parent = path.parent
        while parent.resolve() != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    rels = sorted(Path(p).resolve().relative_to(root).as_posix() for p in written)
    text = "".join(f"{r}\n" for r in rels)
    atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return removed


def is_metrics_json(path: Path, keys) -> bool:
    """A small JSON object whose keys are among ``keys``: what the backtest stage writes per split and method."""
    try:
        if path.stat().st_size > 4096:
            return False
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and bool(doc) and set(doc) <= set(keys)
