"""Native kernels for the simulator: fused neuron scans and max-pool gates, event-driven
convolutions and dense layers (native.c + native_kernels.h), compiled on first use with
the machine's C compiler and loaded with ctypes.

Why: the runtime's numpy kernels pay one memory pass per elementwise operation (an IF
step is three, a max-pool gate about six), and at the firing rates of converted networks
(2-20 %) a weight column per spike can cost less than a dense GEMM per step.

Same meaning as the runtime (tests/test_sim_kernels.py checks every kernel against it):
  * IF scan and max-pool gate: the runtime's operations element by element, in the same
    order: bit-identical results, float and fixed point;
  * event-driven conv / dense: float32 sums in another order than BLAS or onnxruntime
    (within the float tolerance); exact integers in fixed point.
Event-driven synapses are offered only for inputs that are sparse by construction
(spikes, and pooled, padded, reshaped, joined or scaled spikes), and each call picks the
event kernel or the dense one by a cost model of shapes and nonzero count (COST), so the
same input always takes the same path.

Build: `cc -O3 -march=native -shared -fPIC` into $XDG_CACHE_HOME/snnc (or ~/.cache/snnc,
else a temporary directory), keyed by the sources, the compiler and the CPU's features,
written atomically (concurrent builds agree). Without a compiler, or when the build fails,
`load()` returns None and the simulator runs without these kernels: the same results
(float up to summation order), slower; `status()` says why. The standalone
OUT/snn_runtime.py never uses them.
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

SOURCES = [Path(__file__).with_name("native.c"), Path(__file__).with_name("native_kernels.h")]
FLAGS = ["-O3", "-march=native", "-std=c99", "-fPIC", "-shared"]
#: neurons per IF work item (native.c IF_BLOCK)
IF_BLOCK = 2048
#: The cost model that picks, per call, between one weight column per nonzero input and
#: the dense kernel (onnxruntime's or BLAS), in nanoseconds, fitted to kernel timings on
#: the CI machine class (2-core AMD EPYC, AVX-512, one thread): a dense multiply-
#: accumulate; per nonzero input and tap, a fixed cost plus one per 64-byte column add;
#: per output of the event convolution, zeroing its channel-last accumulator and writing
#: it channel-first.
COST = {"dense_mac": 0.025, "event_tap": 4.6, "event_vector": 1.5, "event_output": 1.6}
_I64, _P = ctypes.c_int64, ctypes.c_void_p

_lock = threading.Lock()
_lib: Any = None
_status = "not loaded"


def status() -> str:
    """Whether the native kernels are in use: 'loaded from PATH', or why not."""
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


def _cache_dirs() -> list[Path]:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return [Path(base) / "snnc", Path(tempfile.gettempdir()) / f"snnc-{os.getuid()}"]


def _build(cc: str) -> Path | str:
    """The compiled library's path, or why it could not be built."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    key = hashlib.sha256("\0".join([*(p.read_text() for p in SOURCES), cc, version,
                                    " ".join(FLAGS), _cpu_id()]).encode()).hexdigest()[:20]
    why = "no writable cache directory for the compiled kernels"
    for d in _cache_dirs():
        lib = d / f"snnc_native_{key}.so"
        if lib.is_file():
            return lib
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=d)
            os.close(fd)
        except OSError:
            continue
        try:
            r = subprocess.run([cc, *FLAGS, "-o", tmp, str(SOURCES[0])], capture_output=True,
                               text=True, timeout=300)
            if r.returncode != 0:
                return f"the C compiler failed: {r.stderr.strip()[:300]}"
            os.replace(tmp, lib)  # atomic: concurrent builders agree
            return lib
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return why


def load() -> Any:
    """The compiled library (ctypes.CDLL), building it on first use; None if this machine
    cannot build it (see status())."""
    global _lib, _status
    with _lock:
        if _lib is not None or _status != "not loaded":
            return _lib
        cc = _compiler()
        if cc is None:
            _status = "no C compiler (cc, gcc or clang) on PATH"
            return None
        try:
            built = _build(cc)
            if isinstance(built, str):
                _status = built
                return None
            _lib = _bind(ctypes.CDLL(str(built)))
            _status = f"loaded from {built}"
        except (OSError, subprocess.SubprocessError, AttributeError) as e:
            _status = f"cannot build or load the native kernels: {e}"
            _lib = None
        return _lib


def _bind(lib: Any) -> Any:
    for t in ("f32", "i64"):
        getattr(lib, f"snn_if_{t}").argtypes = [_I64] * 5 + [_P, _P, ctypes.c_int, _P, _I64,
                                                            ctypes.c_int, _I64, _P, _P, _P]
        getattr(lib, f"snn_if_signed_{t}").argtypes = [_I64] * 5 + [_P, _P, ctypes.c_int,
                                                                   _P, _I64, _P, _P, _P, _P]
        getattr(lib, f"snn_gate_{t}").argtypes = [_I64] * 4 + [_P] * 4
        getattr(lib, f"snn_conv_{t}").argtypes = [_I64, _I64] + [_P] * 8
        getattr(lib, f"snn_dense_{t}").argtypes = [_I64] * 4 + [_P] * 4
    lib.snn_nonzero.argtypes = [_P, _I64, _I64]
    lib.snn_nonzero.restype = _I64
    return lib


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _taps(size: int, k: int, stride: int, pad: int, dil: int, out: int) -> np.ndarray:
    """(size, k) int64: the output index that input index i reaches through tap j of a
    window op, or -1 where none."""
    pos = np.arange(size)[:, None] + pad - np.arange(k)[None, :] * dil
    ok = (pos >= 0) & (pos % stride == 0) & (pos // stride < out)
    return np.ascontiguousarray(np.where(ok, pos // stride, -1), np.int64)


class NativeKernels:
    """A kernel provider for runtime.Network(accel=...): `step` for IF populations and
    spiking max-pools, `linear` for conv / dense on sparse inputs. threads: work items
    are split over this many threads (ctypes releases the GIL); None or 1: the caller's."""

    def __init__(self, lib: Any, threads: int | None = None):
        self.lib = lib
        self.threads = max(1, threads or 1)
        self._pool = (ThreadPoolExecutor(self.threads, thread_name_prefix="snnc-native")
                      if self.threads > 1 else None)
        #: synaptic calls that took the event kernel / the dense one (the cost model)
        self.calls = {"event": 0, "dense": 0}

    def _split(self, total: int, fn: Callable[[int, int], None]) -> None:
        """fn(lo, hi) over [0, total), in as many ranges as threads."""
        k = min(self.threads, total)
        if self._pool is None or k < 2:
            fn(0, total)
            return
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
        fn = self.lib.snn_if_i64 if fixed else self.lib.snn_if_f32
        dtype = np.int64 if fixed else np.float32
        a = op["attrs"]
        cap, zero = int(a.get("max_spikes", 0)), int(a["reset"] == "zero")
        th = np.asarray(params[op["params"]["threshold"]]).astype(dtype)
        per_neuron: dict[tuple, np.ndarray] = {}

        def thresholds(shape: tuple) -> np.ndarray:
            thr = per_neuron.get(shape)
            if thr is None:  # one threshold, or one per neuron
                thr = per_neuron[shape] = (th.reshape(1) if th.size == 1 else
                                           np.ascontiguousarray(np.broadcast_to(th, shape))
                                           .reshape(-1))
            return thr

        def scan(v, data, const, th_, zero_, cap_, count, out, fixed_, total=None) -> bool:
            thr = thresholds(v.shape[1:])
            n, b = out.shape[:2]
            per = v[0].size
            d = np.ascontiguousarray(data, dtype)
            self._split(b * -(-per // IF_BLOCK), lambda lo, hi: fn(
                n, b, per, lo, hi, _ptr(v), _ptr(d), int(const), _ptr(thr), thr.size, zero,
                cap, _ptr(count), _ptr(out), _ptr(total)))
            return total is not None

        signed_fn = self.lib.snn_if_signed_i64 if fixed else self.lib.snn_if_signed_f32

        def scan_signed(v, data, const, net, events, out, total=None) -> bool:
            if total is None:
                return False  # the runtime's kernel counts it
            thr = thresholds(v.shape[1:])
            n, b = out.shape[:2]
            per = v[0].size
            d = np.ascontiguousarray(data, dtype)
            self._split(b * -(-per // IF_BLOCK), lambda lo, hi: signed_fn(
                n, b, per, lo, hi, _ptr(v), _ptr(d), int(const), _ptr(thr), thr.size,
                _ptr(net), _ptr(events), _ptr(out), _ptr(total)))
            return True

        return lambda c, op_, ins: runtime.s_if(
            c, op_, ins, scan=scan_signed if op_["attrs"].get("signed") else scan)

    def _gate_step(self, op: dict[str, Any], fixed: bool) -> Callable:
        fn = self.lib.snn_gate_i64 if fixed else self.lib.snn_gate_f32
        a = op["attrs"]
        name = op["name"] + ":counts"  # its own state: plain counts, not runtime's keys

        def step(c: runtime.Chunk, op_: dict, ins: list) -> runtime.Signal:
            data = np.ascontiguousarray(c.full(ins[0]), c.dtype)
            n, b, ch, h, w = data.shape
            oh, ow = (semantics.spatial_out(size, a["kernel"][i], a["strides"][i],
                                            a["pads"][i], a["pads"][2 + i],
                                            a["dilations"][i], a["ceil_mode"])
                      for i, size in enumerate((h, w)))
            geo = np.array([ch, h, w, oh, ow, *a["kernel"], *a["strides"], a["pads"][0],
                            a["pads"][1], *a["dilations"]], np.int64)
            counts = c.state.get(name)
            if counts is None:
                counts = c.state[name] = np.zeros((b, ch, h, w), c.dtype)
            out = np.empty((n, b, ch, oh, ow), c.dtype)
            self._split(b * ch, lambda lo, hi: fn(n, b, lo, hi, _ptr(geo), _ptr(counts),
                                                  _ptr(data), _ptr(out)))
            return runtime.Signal(out, False, True)

        return step

    # ------------------------------------------------------------ synaptic ops ------
    def linear(self, op: dict[str, Any], params: dict[str, np.ndarray], fixed: bool,
               kinds: list[str], fallback: Callable | None) -> Callable | None:
        """Event-driven conv / dense for an input that is sparse by construction (kinds[0]
        "spikes" or "sparse"); `fallback` (the dense kernel) runs where the cost model
        says it is cheaper."""
        if op["kind"] not in ("conv", "dense") or not kinds or kinds[0] == "dense" \
                or fallback is None:
            return None
        dtype = np.int64 if fixed else np.float32
        lanes = 64 // np.dtype(dtype).itemsize  # values per 64-byte column add
        w = np.asarray(params[op["params"]["weight"]])
        bias = op["params"].get("bias")
        b = None if not bias else np.ascontiguousarray(params[bias], dtype)
        if op["kind"] == "dense":
            return self._dense(w, b, dtype, lanes, fixed, fallback)
        return self._conv(op["attrs"], w, b, dtype, lanes, fixed, fallback)

    def _sparse_enough(self, x: np.ndarray, per_nonzero: float, dense: float) -> bool:
        nz = self.lib.snn_nonzero(_ptr(x), x.size, x.itemsize)
        event = nz * per_nonzero < dense
        self.calls["event" if event else "dense"] += 1
        return event

    def _dense(self, w, b, dtype, lanes, fixed, fallback) -> Callable:
        fn = self.lib.snn_dense_i64 if fixed else self.lib.snn_dense_f32
        wt = np.ascontiguousarray(w.T, dtype)  # (K, O): a row per input
        k_in, o = wt.shape
        per_nonzero = COST["event_tap"] + -(-o // lanes) * COST["event_vector"]
        per_row = k_in * o * COST["dense_mac"]

        def dense(xs: list[np.ndarray]) -> np.ndarray:
            x = np.ascontiguousarray(xs[0], dtype)
            if not self._sparse_enough(x, per_nonzero, x.shape[0] * per_row):
                return fallback(xs)
            y = np.empty((x.shape[0], o), dtype)
            self._split(x.shape[0], lambda lo, hi: fn(lo, hi, k_in, o, _ptr(x), _ptr(wt),
                                                      _ptr(b), _ptr(y)))
            return y

        return dense

    def _conv(self, a, w, b, dtype, lanes, fixed, fallback) -> Callable:
        fn = self.lib.snn_conv_i64 if fixed else self.lib.snn_conv_f32
        o, cg, kh, kw = w.shape
        g = int(a["groups"])
        # (C, kh, kw, O/groups): input channel c's weight columns for its group's outputs
        wt = np.ascontiguousarray(w.reshape(g, o // g, cg, kh, kw).transpose(0, 2, 3, 4, 1)
                                  .reshape(g * cg, kh, kw, o // g), dtype)
        # every tap (an upper bound: taps that leave the output are skipped)
        per_nonzero = kh * kw * (COST["event_tap"] + -(-(o // g) // lanes) * COST["event_vector"])
        plans: dict[tuple[int, int], tuple] = {}
        scratch = threading.local()

        def plan(h: int, wd: int) -> tuple:
            oh, ow = (semantics.spatial_out(size, k, a["strides"][i], a["pads"][i],
                                            a["pads"][2 + i], a["dilations"][i], False)
                      for i, (size, k) in enumerate(((h, kh), (wd, kw))))
            geo = np.array([g * cg, h, wd, o, oh, ow, kh, kw, g], np.int64)
            rows = _taps(h, kh, a["strides"][0], a["pads"][0], a["dilations"][0], oh)
            cols = _taps(wd, kw, a["strides"][1], a["pads"][1], a["dilations"][1], ow)
            dense_per_frame = o * oh * ow * (cg * kh * kw * COST["dense_mac"]
                                             - COST["event_output"])
            return oh, ow, geo, rows, cols, dense_per_frame

        def conv(xs: list[np.ndarray]) -> np.ndarray:
            x = np.ascontiguousarray(xs[0], dtype)
            frames, _, h, wd = x.shape
            p = plans.get((h, wd)) or plans.setdefault((h, wd), plan(h, wd))
            oh, ow, geo, rows, cols, dense_per_frame = p
            if not self._sparse_enough(x, per_nonzero, frames * dense_per_frame):
                return fallback(xs)
            y = np.empty((frames, o, oh, ow), dtype)

            def part(lo: int, hi: int) -> None:
                acc = getattr(scratch, "acc", None)  # per thread: the accumulator
                if acc is None or acc.size < oh * ow * o or acc.dtype != dtype:
                    acc = scratch.acc = np.empty(oh * ow * o, dtype)
                fn(lo, hi, _ptr(geo), _ptr(rows), _ptr(cols), _ptr(x), _ptr(wt), _ptr(b),
                   _ptr(acc), _ptr(y))

            self._split(frames, part)
            return y

        return conv
