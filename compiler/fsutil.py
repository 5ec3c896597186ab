"""All of snnc's output goes through here: a whole directory appears at once or not at all,
and a recompile into an earlier output keeps what did not change (file times included)
and what snnc did not write there."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from snnc.ir.errors import SnncError

#: lists the files snnc wrote into an output directory (and their hashes); a folder holding
#: one (parsed, with snnc's keys) is an snnc output that snnc may replace
MANIFEST = "manifest.json"
#: subdirectories snnc owns as a whole (`snnc place` rewrites place/ on its own)
OWNED_DIRS = ("place",)


def manifest_of(out: Path) -> dict | None:
    """The snnc manifest of folder `out`, or None when it has none (not snnc's)."""
    import json

    try:
        m = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if (isinstance(m, dict) and isinstance(m.get("snnc_version"), str)
            and isinstance(m.get("outputs"), dict)):
        return m
    return None


def _entries(d: Path) -> list[Path]:
    """Every file and symbolic link under d (links not followed), sorted."""
    out = []
    for root, dirs, files in os.walk(d, followlinks=False):
        r = Path(root)
        out += [r / f for f in files]
        out += [r / x for x in dirs if (r / x).is_symlink()]
    return sorted(out)


def _mode(default: int, existing: Path | None = None) -> int:
    """The permission bits for a new file or folder: those of the one it replaces, else
    `default` under the umask (mkdtemp / mkstemp would give 0700 / 0600)."""
    if existing is not None:
        try:
            return existing.stat().st_mode & 0o7777
        except OSError:
            pass
    umask = os.umask(0)
    os.umask(umask)
    return default & ~umask


def ownership_manifest(files: dict[str, bytes]) -> bytes:
    """A minimal manifest (snnc's version and every output's sha256) for folders snnc
    writes outside a compile (dumps, C sources from the API), so that it may replace them
    later and never anything else."""
    import hashlib
    import json

    from snnc import __version__

    outputs = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}
    return (json.dumps({"snnc_version": __version__, "outputs": outputs}, indent=1,
                       sort_keys=True) + "\n").encode()


def write_tree_atomic(out_dir: str | Path, files: dict[str, bytes], *,
                      force: bool = False) -> None:
    """Write `files` (relative path -> bytes) as directory out_dir, atomically; nothing is
    left behind if anything fails. snnc replaces only a folder it wrote (one holding its
    manifest; a folder of empty folders counts as empty); a symbolic link is never
    followed or renamed; files snnc did not write there are kept. A non-empty folder that
    is not snnc's is refused unless force, and even then a file of its own is never
    overwritten. Files without a manifest get an ownership manifest."""
    out = Path(out_dir)
    if MANIFEST not in files:
        files = {**files, MANIFEST: ownership_manifest(files)}
    if out.is_symlink():
        raise SnncError(f"output path '{out}' is a symbolic link; snnc does not write "
                        "through links", hint="give the directory it points to, or a new path")
    foreign = False
    if out.exists():
        if not out.is_dir():
            raise SnncError(f"output path '{out}' exists and is a file",
                            hint="choose a new or empty directory")
        if manifest_of(out) is None and _entries(out):
            if not force:
                raise SnncError(f"output directory '{out}' is not empty and was not written "
                                "by snnc", hint="choose a new or empty directory, or pass "
                                "--force to write into it (its files are kept)")
            foreign = True
            clash = sorted(p.relative_to(out).as_posix() for p in _entries(out)
                           if p.relative_to(out).as_posix() in files)
            if clash:
                raise SnncError(f"output directory '{out}' already holds '{clash[0]}', a "
                                "file snnc did not write and would replace",
                                hint="move it away or choose another directory")
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=parent))
        os.chmod(tmp, _mode(0o777, out if out.is_dir() else None))
    except OSError as e:
        raise SnncError(f"cannot create the output directory '{out}': {e.strerror}") from None
    _fill_and_swap(tmp, out, files, f"the output directory '{out}'", keep_same=True,
                   keep_all=foreign)


def _carry_over(old: Path, tmp: Path, files: dict[str, bytes], keep_all: bool) -> None:
    """Move into the new tree, from the output it replaces: every file whose content is
    unchanged (so it keeps its modification time and a build system sees nothing new),
    and every file snnc did not write there (build products of `make -C OUT/c`, notes,
    the source model), i.e. those the old manifest does not list, outside place/
    (keep_all: every file, the folder is not snnc's). The manifest itself is always new:
    it is the stamp a build rule names as its target."""
    m = None if keep_all else manifest_of(old)
    owned = set() if m is None else set(m["outputs"]) | {MANIFEST}
    for path in _entries(old):
        rel = path.relative_to(old).as_posix()
        new = tmp / rel
        if rel in files:
            if (not path.is_symlink() and rel != MANIFEST
                    and path.stat().st_size == len(files[rel])
                    and path.read_bytes() == files[rel]):
                new.unlink()
                _link(path, new)
        elif (rel not in owned and (keep_all or rel.split("/", 1)[0] not in OWNED_DIRS)
              and not new.exists()):
            new.parent.mkdir(parents=True, exist_ok=True)
            _link(path, new)


def _link(src: Path, dst: Path) -> None:
    """dst becomes src (a hard link: same content and time, and the old tree keeps its
    file until the swap succeeds; a copy with its times where links are refused; a
    symbolic link stays a link to the same place)."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst)


def write_subdir_atomic(out_dir: str | Path, sub: str, files: dict[str, bytes]) -> None:
    """Replace the subdirectory `sub` of an snnc output directory with `files` at once;
    the rest of the directory is untouched, nothing is left behind on failure."""
    out = Path(out_dir)
    if out.is_symlink() or manifest_of(out) is None:
        raise SnncError(f"'{out}' is not an snnc output directory",
                        hint="compile a model first: snnc MODEL.onnx -o DIR")
    if (out / sub).is_symlink():
        raise SnncError(f"'{out / sub}' is a symbolic link; snnc does not write through "
                        "links", hint="remove the link")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{sub}.tmp", dir=out))
        os.chmod(tmp, _mode(0o777, out / sub if (out / sub).is_dir() else None))
    except OSError as e:
        raise SnncError(f"cannot write into '{out}': {e.strerror}") from None
    _fill_and_swap(tmp, out / sub, files, f"'{out / sub}'")


def _fill_and_swap(tmp: Path, dest: Path, files: dict[str, bytes], what: str,
                   keep_same: bool = False, keep_all: bool = False) -> None:
    """Write files into the fresh directory tmp, then rename it to dest (moving a
    previous dest aside and deleting it); tmp is removed on any failure. keep_same: a
    previous dest's unchanged files and the files snnc did not write are carried over
    (_carry_over; keep_all: every file of dest)."""
    try:
        for rel, data in sorted(files.items()):
            target = (tmp / rel).resolve()
            if tmp.resolve() not in target.parents:
                raise SnncError(f"internal: output file '{rel}' escapes {what}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if keep_same and dest.is_dir():
            _carry_over(dest, tmp, files, keep_all)
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


def check_writable(path: str | Path, *, directory: bool = False, what: str = "output",
                   inputs: tuple[str | Path | None, ...] = ()) -> None:
    """Fail early (before a long simulation) if `path` cannot be written: it exists as
    the wrong kind, it is one of the command's `inputs` (the data it reads, the model),
    or its first existing ancestor is not a writable directory (missing folders on the
    way are created, as for OUT itself)."""
    p = Path(path)
    for src in inputs:
        if src is not None and str(src) != "-" and _same_file(p, Path(src)):
            raise SnncError(f"cannot write {what} '{p}': it is an input of this command",
                            hint="name a new file")
    if p.exists() and p.is_dir() != directory:
        kind = "a directory" if p.is_dir() else "a file"
        raise SnncError(f"cannot write {what} '{p}': it is {kind}")
    # never a file of an snnc output folder (graph.json, ...): that folder is snnc's
    for folder in [p.parent, *p.parent.parents][:4]:
        m = manifest_of(folder) if folder.is_dir() else None
        if m is not None:
            rel = os.path.relpath(os.path.abspath(p), os.path.abspath(folder))
            if rel in m["outputs"] or rel == MANIFEST or (directory and rel == "."):
                raise SnncError(f"cannot write {what} '{p}': it is part of the snnc "
                                f"output '{folder}'", hint="write it beside that folder")
    # the folder the file is written into (a file is replaced via a sibling temp file)
    anc = p if (directory and p.exists()) else p.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir() or not os.access(anc, os.W_OK | os.X_OK):
        raise SnncError(f"cannot write {what} '{p}': '{anc}' is not a writable directory")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def write_file_atomic(path: str | Path, data: bytes) -> None:
    """Write one file via a temporary sibling and a rename."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            raise SnncError(f"'{p}' is a symbolic link; snnc does not write through links",
                            hint="give the file it points to, or another path")
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        try:
            os.fchmod(fd, _mode(0o666, p if p.is_file() else None))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise SnncError(f"cannot write '{p}': {e.strerror}") from None
