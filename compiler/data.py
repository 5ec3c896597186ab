"""Reading user data files (.npz with `x` and optional `y`), with clear errors."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from snnc.ir.errors import SnncError


def _check_members(p: Path, what: str) -> None:
    """Before reading: every member's declared array (its .npy header) fits the memory
    budget, matches the member's size (a zip bomb or a header that lies is refused), and
    holds numbers (no pickled objects)."""
    from snnc.budget import array_bytes, check

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
    except SnncError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # numpy's header parser raises anything on a hostile header
        raise SnncError(f"{what} file '{p}' is not a readable .npz ({type(e).__name__}: "
                        f"{str(e)[:200]})") from None


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
