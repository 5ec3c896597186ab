"""Native kernels for the simulator: fused neuron scans and max-pool gates, event-driven
convolutions and dense layers (native.c), compiled on first use with the machine's C
compiler and loaded with ctypes.

Why: the runtime's numpy kernels pay a full memory pass per elementwise operation, and a
dense GEMM per step costs as much as the whole ANN; an IF population or a max-pool gate is
one pass in C, and a convolution on spikes costs a weight column per spike (the SynOps),
which at the firing rates of converted networks (2-20 %) is a small fraction of the GEMM.

Same meaning as the runtime, which tests check kernel by kernel:
  * IF scan and max-pool gate: the runtime's operations element by element (float32 adds
    in the same order): bit-identical results, float and fixed point;
  * event-driven conv / dense: float32 sums in another order than BLAS or onnxruntime
    (within the float tolerance); exact integers in fixed point.
Used only on inputs that are sparse by construction (spikes, and pooled, padded,
reshaped, concatenated or scaled spikes) and only while the chunk is sparse enough
(MAX_DENSITY); otherwise the next kernels in line (onnxruntime's, then numpy's) run.

Build: `cc -O3 -march=native -shared -fPIC` into the user's cache directory
($XDG_CACHE_HOME/snnc or ~/.cache/snnc, else a temporary directory), keyed by the
source, the compiler and the CPU, written atomically. No compiler, or a failing build:
`load()` returns None and the simulator runs without these kernels (same results, slower);
`status()` says why. The standalone OUT/snn_runtime.py never uses them.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from snnc.backends.sim import runtime
from snnc.ir import semantics

SOURCE = Path(__file__).with_name("native.c")
HEADER = Path(__file__).with_name("native_kernels.h")
FLAGS = ["-O3", "-march=native", "-std=c99", "-fPIC", "-shared", "-fno-fast-math"]
#: The cost model that picks, per call, between one weight column per nonzero input and
#: the dense kernel (onnxruntime's or BLAS), in nanoseconds, measured on the CI machine
#: class (2-core AMD EPYC, AVX-512): a dense multiply-accumulate, a 16-wide column add per
#: nonzero input and tap, and the per-output cost of the event kernel (zeroing its
#: channel-last accumulator, writing it channel-first). It depends only on shapes and the
#: number of nonzeros, so the same input always takes the same path (determinism).
NS_DENSE_MAC = 0.024
NS_EVENT_VECTOR = 2.9
NS_EVENT_OUTPUT = 1.5
_I64 = ctypes.c_int64
_P = ctypes.c_void_p

_lock = threading.Lock()
_lib: Any = None
_status = "not loaded"


def status() -> str:
    """Why the native kernels are (not) in use: 'loaded from PATH' or the failure."""
    return _status


def _compiler() -> str | None:
    for cc in ("cc", "gcc", "clang"):
        path = shutil.which(cc)
        if path:
            return path
    return None


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's feature flags."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snnc"


def load() -> Any:
    """The compiled library (ctypes.CDLL), building it on first use; None if this machine
    cannot build it."""
    global _lib, _status
    with _lock:
        if _lib is not None or _status != "not loaded":
            return _lib
        cc = _compiler()
        if cc is None:
            _status = "no C compiler (cc, gcc or clang) on PATH"
            return None
        try:
            version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                     timeout=30).stdout
            key = hashlib.sha256("\0".join([SOURCE.read_text(), HEADER.read_text(), cc, version, " ".join(FLAGS),
                                            _cpu_id()]).encode()).hexdigest()[:20]
            for d in (_cache_dir(), Path(tempfile.gettempdir()) / f"snnc-{os.getuid()}"):
                lib = d / f"snnc_native_{key}.so"
                if lib.is_file():
                    break
                try:
                    d.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(suffix=".so", dir=d)
                    os.close(fd)
                    r = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCE)],
                                       capture_output=True, text=True, timeout=120)
                    if r.returncode != 0:
                        os.unlink(tmp)
                        _status = f"the C compiler failed: {r.stderr.strip()[:300]}"
                        return None
                    os.replace(tmp, lib)  # atomic: concurrent builders agree
                    break
                except OSError:
                    continue
            else:
                _status = "no writable cache directory for the compiled kernels"
                return None
            _lib = _bind(ctypes.CDLL(str(lib)))
            _status = f"loaded from {lib}"
        except (OSError, subprocess.SubprocessError) as e:
            _status = f"cannot build or load the native kernels: {e}"
            _lib = None
        return _lib


def _bind(lib: Any) -> Any:
    for t in ("f32", "i64"):
        getattr(lib, f"snn_if_{t}").argtypes = [_I64] * 5 + [_P, _P, ctypes.c_int, _P, _I64,
                                                            ctypes.c_int, _I64, _P, _P, _P]
        getattr(lib, f"snn_gate_{t}").argtypes = [_I64] * 4 + [_P] * 4
        getattr(lib, f"snn_conv_{t}").argtypes = [_I64, _I64] + [_P] * 8
        getattr(lib, f"snn_dense_{t}").argtypes = [_I64] * 4 + [_P] * 4
    lib.snn_nonzero.argtypes = [_P, _I64, _I64]
    lib.snn_nonzero.restype = _I64
    return lib


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


class NativeKernels:
    """Kernels for runtime.Network(accel=...): `step` (IF populations, spiking max-pools)
    and `linear` (event-driven conv / dense on sparse inputs). threads: split batches
    over this many threads (None or 1: the calling thread)."""

    def __init__(self, lib: Any, threads: int | None = None):
        self.lib = lib
        self.threads = max(1, threads or 1)
        self._pool = (ThreadPoolExecutor(self.threads, thread_name_prefix="snnc-native")
                      if self.threads > 1 else None)

    def _split(self, total: int, fn: Callable[[int, int], None]) -> None:
        """fn(lo, hi) over [0, total), in parallel ranges when threads > 1."""
        if self._pool is None or total < 2:
            fn(0, total)
            return
        k = min(self.threads, total)
        edges = [total * i // k for i in range(k + 1)]
        for f in [self._pool.submit(fn, edges[i], edges[i + 1]) for i in range(k)]:
            f.result()

    # ------------------------------------------------------------ spiking ops -------
    def step(self, op: dict[str, Any], params: dict[str, np.ndarray], fixed: bool
             ) -> Callable | None:
        if op["kind"] == "if":
            return self._if_step(op, params, fixed)
        if op["kind"] == "spikemaxpool":
            return self._gate_step(op, fixed)
        return None

    def _if_step(self, op: dict[str, Any], params: dict[str, np.ndarray], fixed: bool
                 ) -> Callable:
        lib, a = self.lib, op["attrs"]
        fn = lib.snn_if_i64 if fixed else lib.snn_if_f32
        dtype = np.int64 if fixed else np.float32
        th_param = np.asarray(params[op["params"]["threshold"]])
        cap, zero = int(a.get("max_spikes", 0)), int(a["reset"] == "zero")
        cache: dict[tuple, np.ndarray] = {}

        def scan(v, data, const, th, zero_, cap_, count, out, fixed_, total=None) -> bool:
            shape = v.shape[1:]
            thr = cache.get(shape)
            if thr is None:
                thr = th_param.astype(dtype).reshape(-1)
                if thr.size != 1:
                    thr = np.ascontiguousarray(np.broadcast_to(
                        th_param.astype(dtype), shape)).reshape(-1)
                cache[shape] = thr
            n, b = out.shape[:2]
            per = int(np.prod(shape))
            d = np.ascontiguousarray(data, dtype)
            self._split(b, lambda lo, hi: fn(n, b, per, lo, hi, _ptr(v), _ptr(d), int(const),
                                             _ptr(thr), thr.size, zero, cap, _ptr(count),
                                             _ptr(out), _ptr(total)))
            return total is not None

        def step(c: runtime.Chunk, op_: dict, ins: list) -> runtime.Signal:
            return runtime.s_if(c, op_, ins, scan=scan)

        return step

    def _gate_step(self, op: dict[str, Any], fixed: bool) -> Callable:
        fn = self.lib.snn_gate_i64 if fixed else self.lib.snn_gate_f32
        a = op["attrs"]
        name = op["name"] + ":counts"

        def step(c: runtime.Chunk, op_: dict, ins: list) -> runtime.Signal:
            data = np.ascontiguousarray(c.full(ins[0]), c.dtype)
            n, b, ch, h, w = data.shape
            oh = semantics.spatial_out(h, a["kernel"][0], a["strides"][0], a["pads"][0],
                                       a["pads"][2], a["dilations"][0], a["ceil_mode"])
            ow = semantics.spatial_out(w, a["kernel"][1], a["strides"][1], a["pads"][1],
                                       a["pads"][3], a["dilations"][1], a["ceil_mode"])
            geo = np.array([ch, h, w, oh, ow, *a["kernel"], *a["strides"], a["pads"][0],
                            a["pads"][1], *a["dilations"]], np.int64)
            counts = c.state.get(name)
            if counts is None:
                counts = c.state[name] = np.zeros((b, ch, h, w), c.dtype)
            out = np.empty((n, b, ch, oh, ow), c.dtype)
            self._split(b, lambda lo, hi: fn(n, b, lo, hi, _ptr(geo), _ptr(counts),
                                             _ptr(data), _ptr(out)))
            return runtime.Signal(out, False, True)

        return step

    # ------------------------------------------------------------ synaptic ops ------
    def linear(self, op: dict[str, Any], params: dict[str, np.ndarray], fixed: bool,
               kinds: list[str], fallback: Callable | None) -> Callable | None:
        """Event-driven conv / dense for an input that is sparse by construction (kinds:
        "spikes" or "sparse"); `fallback` (the dense kernel) runs when a chunk is too
        dense."""
        if not kinds or kinds[0] == "dense" or fallback is None:
            return None
        kind = op["kind"]
        if kind not in ("conv", "dense"):
            return None
        dtype = np.int64 if fixed else np.float32
        w = np.asarray(params[op["params"]["weight"]])
        bias = op["params"].get("bias")
        b = None if not bias else np.ascontiguousarray(params[bias], dtype)
        lib, width = self.lib, np.dtype(dtype).itemsize
        if kind == "dense":
            wt = np.ascontiguousarray(w.T, dtype)  # (K, O)
            k_in, o = wt.shape
            fn = lib.snn_dense_i64 if fixed else lib.snn_dense_f32
            # event cost < dense cost: nnz * ceil(O/16) * V < rows * K * O * M
            per_nz = -(-o // 16) * NS_EVENT_VECTOR
            per_row = k_in * o * NS_DENSE_MAC

            def dense(xs: list[np.ndarray]) -> np.ndarray:
                x = np.ascontiguousarray(xs[0], dtype)
                if lib.snn_nonzero(_ptr(x), x.size, width) * per_nz >= x.shape[0] * per_row:
                    return fallback(xs)
                rows = x.shape[0]
                y = np.empty((rows, o), dtype)
                self._split(rows, lambda lo, hi: fn(lo, hi, k_in, o, _ptr(x), _ptr(wt),
                                                    _ptr(b), _ptr(y)))
                return y

            return dense
        a = op["attrs"]
        o, cg, kh, kw = w.shape
        g = int(a["groups"])
        # (C, kh, kw, O/groups): input channel c's columns, for its group's outputs
        wt = np.ascontiguousarray(
            w.reshape(g, o // g, cg, kh, kw).transpose(0, 2, 3, 4, 1).reshape(
                g * cg, kh, kw, o // g), dtype)
        fn = lib.snn_conv_i64 if fixed else lib.snn_conv_f32
        local = threading.local()

        def taps(size: int, k: int, stride: int, pad: int, dil: int, out: int) -> np.ndarray:
            """(size, k): the output index input index i reaches through tap j, or -1."""
            pos = np.arange(size)[:, None] + pad - np.arange(k)[None, :] * dil
            ok = (pos >= 0) & (pos % stride == 0) & (pos // stride < out)
            return np.ascontiguousarray(np.where(ok, pos // stride, -1), np.int64)

        maps: dict[tuple, tuple] = {}

        per_nz = kh * kw * -(-(o // g) // 16) * NS_EVENT_VECTOR  # all taps, as an upper bound

        def conv(xs: list[np.ndarray]) -> np.ndarray:
            x = np.ascontiguousarray(xs[0], dtype)
            frames, ch, h, wd = x.shape
            outputs = o * semantics.spatial_out(h, kh, a["strides"][0], a["pads"][0],
                                                a["pads"][2], a["dilations"][0], False) \
                * semantics.spatial_out(wd, kw, a["strides"][1], a["pads"][1], a["pads"][3],
                                        a["dilations"][1], False)
            dense_ns = frames * outputs * (cg * kh * kw * NS_DENSE_MAC - NS_EVENT_OUTPUT)
            if lib.snn_nonzero(_ptr(x), x.size, width) * per_nz >= dense_ns:
                return fallback(xs)
            m = maps.get((h, wd))
            if m is None:
                oh = semantics.spatial_out(h, kh, a["strides"][0], a["pads"][0],
                                           a["pads"][2], a["dilations"][0], False)
                ow = semantics.spatial_out(wd, kw, a["strides"][1], a["pads"][1],
                                           a["pads"][3], a["dilations"][1], False)
                m = maps[(h, wd)] = (
                    oh, ow, np.array([ch, h, wd, o, oh, ow, kh, kw, g], np.int64),
                    taps(h, kh, a["strides"][0], a["pads"][0], a["dilations"][0], oh),
                    taps(wd, kw, a["strides"][1], a["pads"][1], a["dilations"][1], ow))
            oh, ow, geo, rows, cols = m
            y = np.empty((frames, o, oh, ow), dtype)

            def part(lo: int, hi: int) -> None:
                acc = getattr(local, "acc", None)
                if acc is None or acc.size < oh * ow * o or acc.dtype != dtype:
                    acc = local.acc = np.empty(oh * ow * o, dtype)
                fn(lo, hi, _ptr(geo), _ptr(rows), _ptr(cols), _ptr(x), _ptr(wt), _ptr(b),
                   _ptr(acc), _ptr(y))

            self._split(frames, part)
            return y

        return conv
