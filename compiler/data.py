"""Reading user data files (.npz with `x` and optional `y`), with clear errors."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from snnc.ir.errors import SnncError


def load_npz(path: str | Path, input_shape: tuple[int, ...], *, need_labels: bool,
             what: str = "data") -> tuple[np.ndarray, np.ndarray | None]:
    """x as float32 (N, *input_shape), y as int64 (N,) or None."""
    p = Path(path)
    if not p.is_file():
        raise SnncError(f"{what} file '{p}' does not exist")
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
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise SnncError(f"{what} file '{p}' is not a readable .npz ({e})") from None
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
    return x, y.astype(np.int64)
