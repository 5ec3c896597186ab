"""Reading user data, with clear errors: one `.npz` with `x` and optional `y`
(load_npz), or a data set of many (open_data): a folder or glob of `.npz` shards and
memory-mapped `.npy` pairs, read batch by batch through one iterator
(`Data.batches`), never whole.

Decision: a data set is the concatenation of its shards in sorted path order; batches
are cut over that concatenation (a batch may span two shards), so the batches, and every
number computed from them, do not depend on how the samples are split into files.
Decision: `.npy` pairs are `x.npy` + `y.npy`, `NAME_x.npy` + `NAME_y.npy` or
`NAME.x.npy` + `NAME.y.npy`, memory-mapped; an `.npz` shard is read whole when a batch
first touches it (numpy cannot map a zip member) and dropped when the next is read.
"""
from __future__ import annotations

import glob as globmod
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from snnc.ir.errors import SnncError


def _check_members(p: Path, what: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Before reading: every member's declared array (its .npy header) fits the memory
    budget, matches the member's size (a zip bomb or a header that lies is refused), and
    holds numbers (no pickled objects). Returns {member: (shape, dtype)}."""
    from snnc.budget import array_bytes, check

    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    header = f.tell()
                if dtype.hasobject:
                    raise SnncError(f"{what} file '{p}': array '{name}' holds Python "
                                    "objects (a pickle), which snnc never loads",
                                    hint="save numeric arrays")
                nbytes = array_bytes(shape, dtype.itemsize)
                check(f"{what} file '{p}': array '{name}' {list(shape)} {dtype}", nbytes)
                if info.file_size != header + nbytes:
                    raise SnncError(f"{what} file '{p}': array '{name}' declares "
                                    f"{int(nbytes)} bytes of data but holds "
                                    f"{info.file_size - header} (a corrupted file)")
                found[name] = (tuple(int(d) for d in shape), dtype)
    except SnncError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # numpy's header parser raises anything on a hostile header
        raise SnncError(f"{what} file '{p}' is not a readable .npz ({type(e).__name__}: "
                        f"{str(e)[:200]})") from None
    return found


def load_npz(path: str | Path, input_shape: tuple[int, ...], *, need_labels: bool,
             what: str = "data", classes: int | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """x as float32 (N, *input_shape), y as int64 (N,) or None; labels in [0, classes)."""
    p = Path(path)
    hint = "save it with numpy.savez(FILE, x=inputs, y=labels)"
    if p.is_dir():
        raise SnncError(f"{what} file '{p}' is a directory, not an .npz file", hint=hint)
    if not p.is_file():
        raise SnncError(f"{what} file '{p}' does not exist")
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        kind = "a single .npy array" if npy else "not an .npz archive"
        raise SnncError(f"{what} file '{p}' is {kind}, expected an .npz with arrays x "
                        "(and y)", hint=hint)
    _check_members(p, what)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if "x" not in keys:
                raise SnncError(f"{what} file '{p}' has no array 'x' (found: "
                                f"{', '.join(sorted(keys)) or 'nothing'})",
                                hint="save inputs as x (N, ...) and labels as y (N,)")
            x = z["x"]
            y = z["y"] if "y" in keys else None
    except SnncError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # a hostile member can make numpy raise anything
        raise SnncError(f"{what} file '{p}' is not a readable .npz ({type(e).__name__}: "
                        f"{str(e)[:200]})") from None
    if x.dtype.kind not in "fiub":
        raise SnncError(f"{what} file '{p}': x has dtype {x.dtype}, expected numbers")
    if tuple(x.shape[1:]) != tuple(input_shape) or x.ndim < 1:
        raise SnncError(f"{what} file '{p}': x has shape {list(x.shape)}, the model expects "
                        f"[N, {', '.join(map(str, input_shape))}]")
    if len(x) == 0:
        raise SnncError(f"{what} file '{p}' holds no samples")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise SnncError(f"{what} file '{p}': x contains NaN or Inf")
    if y is None:
        if need_labels:
            raise SnncError(f"{what} file '{p}' has no labels 'y'",
                            hint="save labels as y (N,) integers")
        return x, None
    if y.ndim != 1 or len(y) != len(x):
        raise SnncError(f"{what} file '{p}': y has shape {list(y.shape)}, expected "
                        f"[{len(x)}]")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise SnncError(f"{what} file '{p}': y must hold integer class labels")
    y = y.astype(np.int64)
    hi = classes
    if (y < 0).any() or (hi is not None and (y >= hi).any()):
        raise SnncError(f"{what} file '{p}': labels range over [{int(y.min())}, "
                        f"{int(y.max())}], the model has "
                        + (f"{hi} classes: labels must be in [0, {hi})" if hi is not None
                           else "class indices from 0"),
                        hint="labels are the indices of the model's output (0-based)")
    return x, y


def _labels(y: np.ndarray, where: str, classes: int | None) -> np.ndarray:
    """y (N,) checked as integer class labels in [0, classes): int64."""
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise SnncError(f"{where}: y must hold integer class labels")
    y = y.astype(np.int64)
    if len(y) and ((y < 0).any() or (classes is not None and (y >= classes).any())):
        raise SnncError(f"{where}: labels range over [{int(y.min())}, {int(y.max())}], the "
                        "model has " + (f"{classes} classes: labels must be in [0, {classes})"
                                        if classes is not None else "class indices from 0"),
                        hint="labels are the indices of the model's output (0-based)")
    return y


class Data:
    """Samples (and labels) that are read batch by batch: `batches(batch)` is the one
    iterator evaluation and sweeps take data through. Global sample indices run over
    the whole set; `read(lo, hi)` gives rows [lo, hi) as float32 x and int64 y (or None),
    checked (finite inputs, labels in range) as they are read."""

    n: int = 0
    labelled: bool = False
    what: str = "data"

    def __len__(self) -> int:
        return self.n

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def where(self, lo: int, hi: int) -> str:
        """Which files hold rows [lo, hi) (for error messages)."""
        raise NotImplementedError

    def batches(self, batch: int, first: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(offset, x, y) for the batches of `batch` samples that start in [first, stop)
        (first a multiple of batch): the batches of the whole set are the same whatever
        range is asked for, so shards of an evaluation cut them as one process does."""
        stop = self.n if stop is None else min(stop, self.n)
        for off in range(first, stop, batch):
            x, y = self.read(off, min(off + batch, self.n))
            yield off, x, y

    def head(self) -> np.ndarray:
        """All inputs as one array (calibration sets, which are small)."""
        from snnc.budget import array_bytes, check

        if self.n:
            x0, _ = self.read(0, 1)
            check(f"{self.what} inputs [{self.n}, {', '.join(map(str, x0.shape[1:]))}]",
                  array_bytes((self.n, *x0.shape[1:]), 4))
        return self.read(0, self.n)[0]


class ArrayData(Data):
    """Arrays in memory (one .npz file, or arrays given to the Python API)."""

    def __init__(self, x: np.ndarray, y: np.ndarray | None, what: str = "data",
                 source: str = "the data"):
        self.x, self.y, self.what, self.source = x, y, what, source
        self.n, self.labelled = len(x), y is not None

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self.x[lo:hi], None if self.y is None else self.y[lo:hi]

    def where(self, lo: int, hi: int) -> str:
        return f"samples {lo}-{hi - 1} of {self.source}"


@dataclass(frozen=True)
class Shard:
    """One file of a sharded data set: an .npz (x and maybe y) or an .npy pair."""

    x: str  # the .npz, or the x .npy file
    y: str | None  # the y .npy file of a pair (None: an .npz, or no labels)
    rows: int
    labelled: bool

    @property
    def name(self) -> str:
        return self.x


class ShardedData(Data):
    """A folder or glob of .npz shards and memory-mapped .npy pairs (module docstring)."""

    def __init__(self, shards: list[Shard], input_shape: tuple[int, ...],
                 classes: int | None, need_labels: bool, what: str, spec: str):
        self.shards, self.input_shape, self.classes = shards, input_shape, classes
        self.need_labels, self.what, self.spec = need_labels, what, spec
        self.starts = np.cumsum([0] + [s.rows for s in shards])
        self.n = int(self.starts[-1])
        self.labelled = all(s.labelled for s in shards)
        self._cache: tuple[int, Any, Any] | None = None  # (shard index, x, y) last read

    def __getstate__(self) -> dict[str, Any]:  # shipped to workers without its cache
        return {**self.__dict__, "_cache": None}

    def _arrays(self, k: int) -> tuple[Any, Any]:
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1], self._cache[2]
        s = self.shards[k]
        try:
            if s.y is None and s.x.endswith(".npz"):
                with np.load(s.x, allow_pickle=False) as z:
                    x = z["x"]
                    y = z["y"] if "y" in z.files and self.labelled else None
            else:
                x = np.load(s.x, mmap_mode="r", allow_pickle=False)
                y = (np.load(s.y, mmap_mode="r", allow_pickle=False)
                     if s.y is not None and self.labelled else None)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise SnncError(f"{self.what} shard '{s.name}' cannot be read ({type(e).__name__}"
                            f": {str(e)[:200]})") from None
        self._cache = (k, x, y)
        return x, y

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        xs, ys = [], []
        k = int(np.searchsorted(self.starts, lo, side="right")) - 1
        pos = lo
        while pos < hi:
            while self.shards[k].rows == 0 or pos >= self.starts[k + 1]:
                k += 1
            a = pos - int(self.starts[k])
            b = min(hi, int(self.starts[k + 1])) - int(self.starts[k])
            x, y = self._arrays(k)
            where = f"{self.what} shard '{self.shards[k].name}' rows {a}-{b - 1}"
            with np.errstate(all="ignore"):
                xb = np.asarray(x[a:b]).astype(np.float32)
            if not np.isfinite(xb).all():
                raise SnncError(f"{where}: x contains NaN or Inf (or values beyond float32)")
            xs.append(xb)
            if y is not None:
                ys.append(_labels(np.asarray(y[a:b]), where, self.classes))
            pos += b - a
        x = xs[0] if len(xs) == 1 else np.concatenate(xs)
        y = None if not self.labelled else ys[0] if len(ys) == 1 else np.concatenate(ys)
        return x, y

    def where(self, lo: int, hi: int) -> str:
        k0 = int(np.searchsorted(self.starts, lo, side="right")) - 1
        k1 = int(np.searchsorted(self.starts, hi - 1, side="right")) - 1
        names = [s.name for s in self.shards[k0:k1 + 1] if s.rows]
        return f"samples {lo}-{hi - 1} ({', '.join(names)})"


GLOB_CHARS = set("*?[")


def _pair_y(x_path: Path) -> Path | None:
    """The y file of an .npy pair's x file (x.npy, NAME_x.npy, NAME.x.npy), or None
    when x_path is not named as an x file."""
    name = x_path.name
    for suffix, other in (("_x.npy", "_y.npy"), (".x.npy", ".y.npy")):
        if name.endswith(suffix):
            return x_path.with_name(name[: -len(suffix)] + other)
    return x_path.with_name("y.npy") if name == "x.npy" else None


def _shard_files(spec: str, what: str) -> list[Path]:
    """The .npz files and x .npy files a folder or glob names, sorted."""
    p = Path(spec)
    hint = ("a folder or glob of .npz shards (x, y) or of .npy pairs (x.npy + y.npy, "
            "NAME_x.npy + NAME_y.npy)")
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.is_file() and (
            q.suffix == ".npz" or (q.suffix == ".npy" and _pair_y(q) is not None)))
        if not found:
            raise SnncError(f"{what} folder '{p}' holds no .npz shards and no x .npy files",
                            hint=hint)
        return found
    matched = sorted(Path(m) for m in globmod.glob(spec))
    found = [q for q in matched if q.is_file() and (
        q.suffix == ".npz" or (q.suffix == ".npy" and _pair_y(q) is not None))]
    if not found:
        raise SnncError(f"{what} '{spec}' matches no .npz shards and no x .npy files "
                        f"({len(matched)} paths matched)", hint=hint)
    return found


def _npy_header(p: Path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        a = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy raises anything on a hostile header
        raise SnncError(f"{what} file '{p}' is not a readable .npy ({type(e).__name__}: "
                        f"{str(e)[:200]})") from None
    if not isinstance(a, np.ndarray):
        raise SnncError(f"{what} file '{p}' is not an .npy array")
    return tuple(a.shape), a.dtype


def open_data(spec: str | Path, input_shape: tuple[int, ...], *, need_labels: bool,
              what: str = "data", classes: int | None = None) -> Data:
    """The data set `spec` names: one .npz (read whole, as load_npz), or a folder or glob
    of .npz shards and .npy pairs, or one x .npy file of a pair (ShardedData, read in
    batches). Every shard's array headers are checked here (shape, dtype, label count);
    the values as their batches are read."""
    spec = str(spec)
    p = Path(spec)
    if p.is_file() and p.suffix == ".npy" and _pair_y(p) is not None:
        files = [p]
    elif p.is_dir() or (not p.exists() and GLOB_CHARS & set(spec)):
        files = _shard_files(spec, what)
    else:  # one file: load_npz's checks and messages
        x, y = load_npz(p, input_shape, need_labels=need_labels, what=what, classes=classes)
        return ArrayData(x, y, what, f"'{p}'")
    shards: list[Shard] = []
    shape_text = f"[N, {', '.join(map(str, input_shape))}]"
    for f in files:
        if f.suffix == ".npz":
            if not zipfile.is_zipfile(f):
                raise SnncError(f"{what} shard '{f}' is not an .npz archive")
            heads = _check_members(f, what)
            if "x" not in heads:
                raise SnncError(f"{what} shard '{f}' has no array 'x' (found: "
                                f"{', '.join(sorted(heads)) or 'nothing'})")
            (xs, xd), yh = heads["x"], heads.get("y")
            y_path = None
        else:
            xs, xd = _npy_header(f, what)
            yp = _pair_y(f)
            yh = _npy_header(yp, what) if yp is not None and yp.is_file() else None
            y_path = str(yp) if yh is not None else None
        if xd.kind not in "fiub":
            raise SnncError(f"{what} shard '{f}': x has dtype {xd}, expected numbers")
        if len(xs) < 1 or tuple(xs[1:]) != tuple(input_shape):
            raise SnncError(f"{what} shard '{f}': x has shape {list(xs)}, the model "
                            f"expects {shape_text}")
        if yh is not None:
            ys, yd = yh
            if len(ys) != 1 or ys[0] != xs[0]:
                raise SnncError(f"{what} shard '{f}': y has shape {list(ys)}, expected "
                                f"[{xs[0]}]")
            if yd.kind not in "iuf":
                raise SnncError(f"{what} shard '{f}': y has dtype {yd}, expected integer "
                                "class labels")
        elif need_labels:
            raise SnncError(f"{what} shard '{f}' has no labels "
                            + ("(no 'y' array)" if f.suffix == ".npz" else
                               f"(no {_pair_y(f).name} beside it)"),
                            hint="every shard needs its labels y (N,)")
        shards.append(Shard(str(f), y_path, int(xs[0]), yh is not None))
    data = ShardedData(shards, tuple(input_shape), classes, need_labels, what, spec)
    if data.n == 0:
        raise SnncError(f"{what} '{spec}' holds no samples ({len(shards)} empty shards)")
    return data
