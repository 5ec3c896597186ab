"""All of snnc's output goes through here: a whole directory appears at once or not at all,
and a recompile into an earlier output keeps what did not change (file times included)
and what snnc did not write there."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from snnc.ir.errors import SnncError

MARKER = "graph.json"  # an snnc output directory always holds this file


def write_tree_atomic(out_dir: str | Path, files: dict[str, bytes]) -> None:
    """Write `files` (relative path -> bytes) as directory out_dir, replacing a previous
    snnc output there. Nothing is left behind if anything fails."""
    out = Path(out_dir)
    # a directory of empty directories is empty (build tools create an output's folders)
    if out.exists() and (not out.is_dir() or (any(p.is_file() for p in out.rglob("*"))
                                              and not (out / MARKER).is_file())):
        raise SnncError(f"output path '{out}' exists and is not an snnc output directory",
                        hint="choose a new or empty directory")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=parent))
    except OSError as e:
        raise SnncError(f"cannot create the output directory '{out}': {e.strerror}") from None
    _fill_and_swap(tmp, out, files, f"the output directory '{out}'", keep_same=True)


#: lists the files snnc wrote into an output directory (and their hashes)
MANIFEST = "manifest.json"
#: subdirectories snnc owns as a whole (`snnc place` rewrites place/ on its own)
OWNED_DIRS = ("place",)


def _carry_over(old: Path, tmp: Path, files: dict[str, bytes]) -> None:
    """Move into the new tree, from the output it replaces: every file whose content is
    unchanged (so it keeps its modification time and a build system sees nothing new),
    and every file snnc did not write there (build products of `make -C OUT/c`, notes),
    i.e. those the old manifest does not list, outside place/. The manifest itself is
    always new: it is the stamp a build rule names as its target."""
    import json

    try:
        owned = set(json.loads((old / MANIFEST).read_text())["outputs"]) | {MANIFEST}
    except (OSError, ValueError, KeyError, TypeError):
        owned = None  # an output of an older snnc: carry over unchanged files only
    for path in sorted(p for p in old.rglob("*") if p.is_file()):
        rel = path.relative_to(old).as_posix()
        new = tmp / rel
        if rel in files:
            if (rel != MANIFEST and path.stat().st_size == len(files[rel])
                    and path.read_bytes() == files[rel]):
                new.unlink()
                _link(path, new)
        elif (owned is not None and rel not in owned
              and rel.split("/", 1)[0] not in OWNED_DIRS and not new.exists()):
            new.parent.mkdir(parents=True, exist_ok=True)
            _link(path, new)


def _link(src: Path, dst: Path) -> None:
    """dst becomes src (a hard link: same content and time, and the old tree keeps its
    file until the swap succeeds; a copy with its times where links are refused)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_subdir_atomic(out_dir: str | Path, sub: str, files: dict[str, bytes]) -> None:
    """Replace the subdirectory `sub` of an snnc output directory with `files` at once;
    the rest of the directory is untouched, nothing is left behind on failure."""
    out = Path(out_dir)
    if not (out / MARKER).is_file():
        raise SnncError(f"'{out}' is not an snnc output directory",
                        hint="compile a model first: snnc MODEL.onnx -o DIR")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{sub}.tmp", dir=out))
    except OSError as e:
        raise SnncError(f"cannot write into '{out}': {e.strerror}") from None
    _fill_and_swap(tmp, out / sub, files, f"'{out / sub}'")


def _fill_and_swap(tmp: Path, dest: Path, files: dict[str, bytes], what: str,
                   keep_same: bool = False) -> None:
    """Write files into the fresh directory tmp, then rename it to dest (moving a
    previous dest aside and deleting it); tmp is removed on any failure. keep_same: a
    previous dest's unchanged files and the files snnc did not write are carried over
    (_carry_over)."""
    try:
        for rel, data in sorted(files.items()):
            target = (tmp / rel).resolve()
            if tmp.resolve() not in target.parents:
                raise SnncError(f"internal: output file '{rel}' escapes {what}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if keep_same and dest.is_dir():
            _carry_over(dest, tmp, files)
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old.{os.getpid()}"
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SnncError(f"cannot write {what}: {e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(path: str | Path, *, directory: bool = False, what: str = "output"
                   ) -> None:
    """Fail early (before a long simulation) if `path` cannot be written: it exists as
    the wrong kind, or its first existing ancestor is not a writable directory."""
    p = Path(path)
    if p.exists() and p.is_dir() != directory:
        kind = "a directory" if p.is_dir() else "a file"
        raise SnncError(f"cannot write {what} '{p}': it is {kind}")
    anc = p if p.exists() else p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir() or not os.access(anc, os.W_OK | os.X_OK):
        raise SnncError(f"cannot write {what} '{p}': '{anc}' is not a writable directory")


def write_file_atomic(path: str | Path, data: bytes) -> None:
    """Write one file via a temporary sibling and a rename."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except OSError as e:
        raise SnncError(f"cannot write '{p}': {e.strerror}") from None
