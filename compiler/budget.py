"""Budgets checked before allocation (issue 19): every size that comes from a file or a
flag (an array header, a constant's shape, a declared dimension, a batch, a number of
time steps) is compared with a memory limit before anything is allocated or simulated.

The limit is `--max-memory` (bytes, or with a K/M/G/T suffix), by default half of the
machine's physical memory (or of the process's address-space limit, when lower);
SNNC_MAX_MEMORY sets it for every command (build systems).
A size over it is a SnncError naming the size, the limit and the flag.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

from snnc.ir.errors import SnncError

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """'512M', '2G', '1.5G', '1000000' -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise SnncError(f"bad memory size '{text}'", hint="use bytes or a K/M/G/T suffix, "
                        "e.g. --max-memory 4G")
    n = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if n < 1 << 20:
        raise SnncError(f"--max-memory {text} is below 1 MiB")
    return n


def physical_memory() -> int:
    """The memory this process may use: the machine's physical memory, or less when the
    process runs under an address-space limit (ulimit -v, a build sandbox)."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 8 << 30
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            mem = min(mem, soft)
    except (ImportError, ValueError, OSError):
        pass
    return mem


def default_limit() -> int:
    env = os.environ.get("SNNC_MAX_MEMORY")
    return parse_size(env) if env else physical_memory() // 2


#: the limit in force (set from --max-memory by the CLI, or by set_limit)
_limit: int | None = None


def set_limit(nbytes: int | None) -> None:
    global _limit
    _limit = nbytes


def limit() -> int:
    return _limit if _limit is not None else default_limit()


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check(what: str, nbytes: float, *, node: str | None = None, hint: str = "") -> None:
    """Refuse `what` needing nbytes when that exceeds the limit."""
    lim = limit()
    if not math.isfinite(nbytes) or nbytes > lim:
        raise SnncError(f"{what} needs {human(nbytes)}, over the memory limit "
                        f"{human(lim)}", node=node,
                        hint=(hint + "; " if hint else "") + "raise it with --max-memory "
                        "(or SNNC_MAX_MEMORY) if the machine has the memory")


def array_bytes(shape: Iterable[int], itemsize: int) -> float:
    """Bytes of an array of this shape (a float, so absurd shapes do not overflow)."""
    n = 1.0
    for d in shape:
        n *= max(int(d), 0)
    return n * itemsize


def check_simulation(graph, batch: int, timesteps: int, *, samples: int | None = None,
                     what: str = "simulating") -> None:
    """Refuse a simulation whose working set would exceed the budget: per sample of a
    batch, every value of the graph a few times over (currents, membranes, spike counts,
    gates), and the readout after every step (T x samples x outputs, float64).
    `samples`: how many readouts are kept at once (default: one batch)."""
    per_sample = sum(array_bytes(v.shape, 4) for v in graph.values.values())
    out = sum(array_bytes(graph.shape(v), 8) for v in graph.outputs)
    kept = batch if samples is None else samples
    check(f"{what} (batch {batch}, T={timesteps})",
          4 * batch * per_sample + float(timesteps) * kept * out,
          hint="use a smaller --batch or fewer time steps")


#: time steps a network may be stored with or run for (the C code counts them in 32 bits)
MAX_TIMESTEPS = (1 << 31) - 1
