"""Hostile and broken inputs for snnc, by input class (issue 19), and how to judge a run.

A `Case` is a small recipe: `make(work, assets)` writes its files into the folder `work`
(which becomes the current directory of the run) and returns the argv of the command
(`snnc ARGV...`, or `python ARGV...` for the standalone OUT/snn_runtime.py). `generate(n,
seed)` lists n cases in a deterministic order: first the fixed catalogue of every class,
interleaved class by class (so any prefix covers every class), then seeded random
mutations. `execute_case` materializes a case, runs its commands with a runner (a
subprocess in tools/fuzz/run.py; in-process in tests/test_fuzz.py) and judges the outcome:

* "compiled": exit 0 (for `snnc check`: the model can be compiled);
* "clean error": exit 2 and exactly one stderr line `snnc: error: ...`;
* "not compilable": `snnc check` exit 1 with nothing on stderr;
* "bad": anything else: a traceback, another exit code, a signal, more than one stderr line,
  raw control characters in the output, a timeout, a memory blow-up, files written outside
  the case's folder, a failed run that left, changed or deleted files, a successful run
  that touched files it does not own or deleted user files, or a case-specific invariant
  (a symlinked OUT replaced, generated C that does not build, modes ignoring the umask).

Nothing here imports snnc (only tests/onnx_builders.py does, for the dense base model):
the cases stay usable while snnc is broken. Valid models come from tests/conftest.py
(small_cnn), tests/onnx_builders.py and examples/.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import unicodedata
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
EXAMPLES = REPO / "examples"

MODEL, CALIB, DATA, OUT = "m.onnx", "calib.npz", "data.npz", "out"
#: what a successful `snnc eval` may rewrite: the HTML report and the manifest listing it
EVAL_OUT = ("out/report.html", "out/manifest.json")
#: the time steps of every valid compile here (small, so that evaluations are quick)
T = "16"

#: the input classes, in the order the catalogue interleaves them
CLASSES = ("onnx-attr", "onnx-shape", "onnx-init", "onnx-graph", "onnx-names", "onnx-bytes",
           "data", "cli", "files", "out-dir", "ir-text", "runtime")
#: how many random cases each class contributes per round once its catalogue is used up
WEIGHTS = {"onnx-attr": 2, "onnx-shape": 1, "onnx-init": 2, "onnx-graph": 1, "onnx-names": 2,
           "onnx-bytes": 3, "data": 2, "cli": 2, "files": 0, "out-dir": 3, "ir-text": 2,
           "runtime": 1}

#: a round of generate() in RANDOM_EVERY adds random cases
RANDOM_EVERY = 4

OK_OUTCOMES = ("compiled", "clean error", "not compilable")


@dataclass(frozen=True)
class Case:
    """One hostile input: `make(work, assets)` writes files into `work` and returns argv."""

    cls: str
    name: str
    description: str
    make: Callable[[Path, Assets], list[str]] = field(repr=False)
    #: "snnc": argv goes to `snnc` (snnc.cli.main); "runtime": to `python` (the standalone
    #: simulator OUT/snn_runtime.py)
    program: str = "snnc"
    #: commands run after the first one when it succeeded (same program, same folder); a
    #: `snnc check` followed by a compile must agree with it
    then: tuple[tuple[str, ...], ...] = ()
    #: paths (relative to work) a successful run may create or change
    outputs: tuple[str, ...] = (OUT,)
    #: user files (relative to work) that must survive every run unchanged
    protected: tuple[str, ...] = ()
    #: may allocate or loop without bound: only ever run in a subprocess with limits
    isolate: bool = False
    #: time budget per command: 10 s (a hang) unless the case is linear work on a huge
    #: valid input (measured: 2,000 / 5,000 / 20,000 chained ReLUs compile in 2.2 / 4.5 /
    #: 19 s: proportional, not a hang)
    seconds: float = 10.0
    #: relies on file permissions (as root: a subprocess without CAP_DAC_OVERRIDE)
    needs_perms: bool = False
    #: extra invariants checked after a successful run: fn(work) -> problems
    checks: tuple[Callable[[Path], list[str]], ...] = field(default=(), repr=False)
    index: int = -1

    @property
    def id(self) -> str:
        num = f"c{self.index:04d}" if self.index >= 0 else "adhoc"
        return f"{num}:{self.cls}:{self.name}"


# ====================================================================== valid inputs ======
def _load_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _input_dims(m: onnx.ModelProto) -> tuple[int, ...]:
    return tuple(d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:])


def make_shim(src_root: Path, dest: Path) -> Path:
    """A folder to put first on PYTHONPATH so that `import snnc` is the source tree
    src_root (compiler/ -> snnc, ir/ -> snnc.ir, ...; pyproject's package-dir) whatever
    snnc is installed: dest/snnc/ holds symlinks to the entries of compiler/, ir, passes
    and backends. Returns dest."""
    pkg = dest / "snnc"
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    for p in sorted((src_root / "compiler").iterdir()):
        if p.name != "__pycache__":
            os.symlink(p, pkg / p.name)
    for sub in ("ir", "passes", "backends"):
        if (src_root / sub).is_dir() and not (pkg / sub).exists():
            os.symlink(src_root / sub, pkg / sub)
    return dest


def child_env(tmp: Path | None = None, shim: Path | None = None,
              mpl_dir: Path | None = None) -> dict[str, str]:
    """The environment of a fuzzed command: TMPDIR in the case folder, no bytecode
    written, one BLAS/OpenMP thread (the machine is shared), matplotlib without a display,
    output bytes passed through as they are, and `snnc` from `shim` when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONWARN", "SNNC"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONIOENCODING="utf-8:surrogateescape")
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    if shim is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(shim), *filter(None, [env.get(
            "PYTHONPATH")])])
    if mpl_dir is not None:
        env["MPLCONFIGDIR"] = str(mpl_dir)
    return env


class Assets:
    """Valid inputs shared by the cases of one run, built once into `cache`: models
    (small_cnn from tests/conftest.py, a dense net from tests/onnx_builders.py, the shipped
    MNIST CNN), calibration and test data, compiled OUT folders, a text IR, a zip bomb.
    `shim`: run snnc from this PYTHONPATH folder (make_shim)."""

    def __init__(self, cache: Path, python: str = sys.executable, shim: Path | None = None):
        self.cache = Path(cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.python = python
        self.env = child_env(shim=shim)
        self._models: dict[str, onnx.ModelProto] = {}
        self._lock = threading.RLock()  # run.py --jobs N builds assets from N threads

    # ---- models ----
    def model(self, base: str = "small") -> onnx.ModelProto:
        with self._lock:
            if base not in self._models:
                self._models[base] = self._build(base)
            return copy.deepcopy(self._models[base])

    def _build(self, base: str) -> onnx.ModelProto:
        if base == "mnist":
            return onnx.load(str(EXAMPLES / "mnist_cnn.onnx"))
        if base == "dense":
            if str(TESTS) not in sys.path:
                sys.path.insert(0, str(TESTS))
            import onnx_builders as ob

            rng = ob.rng_for(7)
            nodes = [h.make_node("Flatten", ["x"], ["f"], name="flat"),
                     h.make_node("Gemm", ["f", "w1", "b1"], ["g1"], transB=1, name="fc1"),
                     h.make_node("Relu", ["g1"], ["r1"], name="relu1"),
                     h.make_node("Gemm", ["r1", "w2", "b2"], ["y"], transB=1, name="fc2")]
            inits = {"w1": ob.weights(rng, (32, 144)), "b1": ob.small(rng, (32,), 0.1),
                     "w2": ob.weights(rng, (10, 32)), "b2": ob.small(rng, (10,), 0.1)}
            return ob.build_model(nodes, (1, 12, 12), inits)
        cf = _load_path("_snnc_fuzz_conftest", TESTS / "conftest.py")
        if base == "small":
            return cf.small_cnn(0)
        if base == "residual":
            return cf.small_cnn(1, residual=True)
        if base == "clip":  # Relu -> Clip(0, 1): --norm clip needs no data
            m = cf.small_cnn(2)
            n = _node(m, "relu1")
            n.op_type = "Clip"
            n.input.extend(["clip_lo", "clip_hi"])
            m.graph.initializer.extend([nh.from_array(np.float32(0), "clip_lo"),
                                        nh.from_array(np.float32(1), "clip_hi")])
            return m
        raise KeyError(base)

    def write_model(self, work: Path, base: str = "small", name: str = MODEL) -> Path:
        p = work / name
        p.write_bytes(self.model(base).SerializeToString())
        return p

    def model_bytes(self, base: str = "small") -> bytes:
        return self.model(base).SerializeToString()

    # ---- data ----
    def x(self, base: str = "small", n: int = 16) -> np.ndarray:
        dims = _input_dims(self.model(base))
        return np.random.default_rng(0).random((n, *dims), dtype=np.float32)

    def y(self, n: int = 16) -> np.ndarray:
        return np.random.default_rng(1).integers(0, 10, n).astype(np.int64)

    def write_calib(self, work: Path, base: str = "small", name: str = CALIB) -> str:
        np.savez(work / name, x=self.x(base))
        return name

    def write_data(self, work: Path, base: str = "small", name: str = DATA) -> str:
        np.savez(work / name, x=self.x(base), y=self.y())
        return name

    # ---- compiled outputs ----
    VARIANTS = {"small": ("small", ()), "small-c": ("small", ("--backend", "c")),
                "ttfs": ("small", ("--coding", "ttfs")), "mnist": ("mnist", ()),
                "residual": ("residual", ())}

    def out(self, work: Path, variant: str = "small", name: str = OUT) -> Path:
        """A valid compiled OUT (compiled once per run) copied to work/name."""
        src = self.cache / f"out-{variant}" / OUT
        with self._lock:
            if not (src / "graph.json").is_file():
                self._build_out(src, variant)
        dst = work / name
        shutil.copytree(src, dst, symlinks=True)
        return dst

    def _build_out(self, src: Path, variant: str) -> None:
        base, flags = self.VARIANTS[variant]
        d = src.parent
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        self.write_model(d, base)
        self.write_calib(d, base)
        argv = _compile(MODEL, *flags)
        r = subprocess.run([self.python, "-m", "snnc", *argv], cwd=d, capture_output=True,
                           text=True, timeout=300, env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"cannot compile the base OUT '{variant}' (snnc "
                               f"{' '.join(argv)}): {r.stderr.strip()[-2000:]}")

    def ir_text(self, base: str = "small") -> str:
        """`snnc opt m.onnx` of a base model: the imported IR with inline weights."""
        p = self.cache / f"{base}.snnir"
        with self._lock:
            if not p.is_file():
                self._build_ir_text(p, base)
        return p.read_text(encoding="utf-8")

    def _build_ir_text(self, p: Path, base: str) -> None:
        d = self.cache / f"ir-{base}"
        d.mkdir(exist_ok=True)
        self.write_model(d, base)
        r = subprocess.run([self.python, "-m", "snnc", "opt", MODEL, "-o", str(p)],
                           cwd=d, capture_output=True, text=True, timeout=300, env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"cannot make the base text IR: {r.stderr[-2000:]}")

    def zip_bomb(self) -> Path:
        """An .npz (ZIP64) whose x.npy member inflates to 4.5 GiB of zeros (x declared
        (8388608, 1, 12, 12) float32); about 4 MB on disk."""
        p = self.cache / "bomb.npz"
        with self._lock:
            if p.is_file():
                return p
            n = (9 * 2 ** 29) // (144 * 4)
            header = _npy_header("<f4", (n, 1, 12, 12))
            p.write_bytes(_zip64_zeros("x.npy", header, n * 144 * 4,
                                       extra={"y.npy": _npy(np.zeros(16, np.int64))}))
        return p


# ====================================================================== byte crafting =====
def _npy(a: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=True)
    return b.getvalue()


def _npy_header(descr: str, shape: Sequence[int], fortran: bool = False,
                raw_shape: str | None = None) -> bytes:
    """A .npy header (format 1.0, or 2.0 when long) declaring any dtype and shape."""
    shp = raw_shape if raw_shape is not None else (
        "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")")
    d = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shp}, }}"
    for major, fmt in ((1, "<H"), (2, "<I")):
        pre = 10 if major == 1 else 12
        total = -(-(pre + len(d) + 1) // 64) * 64
        body = d + " " * (total - pre - len(d) - 1) + "\n"
        if major == 2 or len(body) < 65536:
            return b"\x93NUMPY" + bytes([major, 0]) + struct.pack(fmt, len(body)) + body.encode(
                "latin1")
    raise AssertionError


def _npz(members: dict[str, bytes], compress: bool = False) -> bytes:
    b = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(b, "w", method) as z:
        for k, v in members.items():
            z.writestr(zipfile.ZipInfo(k, (1980, 1, 1, 0, 0, 0)), v, compress_type=method)
    return b.getvalue()


def _zip64_zeros(name: str, header: bytes, zeros: int, extra: dict[str, bytes]) -> bytes:
    """A ZIP64 archive whose member `name` is header + `zeros` zero bytes, deflated by
    repeating one fully flushed compressed block (fast to make), plus stored members."""
    chunk = 1 << 24
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    seg = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    rest = zeros % chunk
    tail = c.compress(bytes(rest)) + c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    block_crc_parts = zeros // chunk
    zchunk = bytes(chunk)
    for _ in range(block_crc_parts):
        crc = zlib.crc32(zchunk, crc)
    crc = zlib.crc32(bytes(rest), crc)
    data = head + seg * block_crc_parts + tail
    usize = len(header) + zeros
    out = io.BytesIO()
    central = []
    nm = name.encode()
    # member 1: zip64 sizes in the local extra field
    off = out.tell()
    out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(nm), 20))
    out.write(nm + struct.pack("<HHQQ", 1, 16, usize, len(data)))
    out.write(data)
    central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc,
                               0xFFFFFFFF, 0xFFFFFFFF, len(nm), 28, 0, 0, 0, 0, 0xFFFFFFFF)
                   + nm + struct.pack("<HHQQQ", 1, 24, usize, len(data), off))
    for k, v in extra.items():
        kn = k.encode()
        off = out.tell()
        kc = zlib.crc32(v)
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, kc, len(v),
                              len(v), len(kn), 0) + kn + v)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0x21,
                                   kc, len(v), len(v), len(kn), 0, 0, 0, 0, 0, off) + kn)
    cd_off = out.tell()
    cd = b"".join(central)
    out.write(cd)
    z64_off = out.tell()
    n = len(central)
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), cd_off))
    out.write(struct.pack("<IIQI", 0x07064B50, 0, z64_off, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), 0xFFFFFFFF, 0))
    return out.getvalue()


#: an object-array pickle that, if unpickled, creates a file next to the case's folder
PICKLE_PAYLOAD = b"c__builtin__\nopen\n(S'../PWNED_by_pickle'\nS'w'\ntR."


def _pickle_npy(shape: Sequence[int] = (16, 1, 12, 12)) -> bytes:
    return _npy_header("|O", shape) + PICKLE_PAYLOAD


# ====================================================================== model editing =====
def _node(m: onnx.ModelProto, name: str) -> onnx.NodeProto:
    for n in m.graph.node:
        if n.name == name:
            return n
    raise KeyError(name)


def _init(m: onnx.ModelProto, name: str) -> onnx.TensorProto:
    for t in m.graph.initializer:
        if t.name == name:
            return t
    raise KeyError(name)


def _set_attr(node: onnx.NodeProto, key: str, value: Any) -> None:
    keep = [a for a in node.attribute if a.name != key]
    del node.attribute[:]
    node.attribute.extend(keep)
    if isinstance(value, list) and not value:
        node.attribute.append(h.make_attribute(key, [], attr_type=onnx.AttributeProto.INTS))
    elif value is not None:
        node.attribute.append(h.make_attribute(key, value))


def _rename_value(m: onnx.ModelProto, old: str, new: str) -> None:
    g = m.graph
    for coll in (g.input, g.output, g.value_info, g.initializer):
        for v in coll:
            if v.name == old:
                v.name = new
    for n in g.node:
        for lst in (n.input, n.output):
            for i, v in enumerate(lst):
                if v == old:
                    lst[i] = new


def _set_input_dims(m: onnx.ModelProto, dims: Sequence[int | str]) -> None:
    t = m.graph.input[0].type.tensor_type
    del t.shape.dim[:]
    for d in dims:
        dim = t.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def _hostile(s: str) -> str:
    """A printable rendering of a hostile string, for descriptions and reports."""
    r = repr(s)
    return r if len(r) <= 60 else r[:40] + f"...<{len(s)} chars>"


# ====================================================================== commands ==========
def _compile(model: str = MODEL, *extra: str, calib: str | None = CALIB) -> list[str]:
    argv = [model, "-o", OUT]
    if calib:
        argv += ["--calib", calib]
    ttfs = any(a == "ttfs" and b == "--coding" for b, a in zip(extra, extra[1:]))
    # --tune off: a case fuzzes the input it mutates, not the recipe search (which
    # `--timesteps` alone turns on, and which multiplies a deep chain's compile time)
    return argv + ([] if ttfs else ["--timesteps", T, "--tune", "off"]) + list(extra)


def _eval(*extra: str, data: str = DATA, diag: bool = False) -> list[str]:
    argv = ["eval", OUT, "--data", data, "--timesteps", "8,16"]
    return argv + ([] if diag else ["--no-diagnostics"]) + list(extra)


#: how a model case is run: argv, then-commands, outputs
MODEL_COMMANDS = ("compile", "check", "compile-c", "opt", "compile-eval")


def _model_case(cls: str, name: str, desc: str, mutate: Callable[..., Any], *,
                base: str = "small", cmd: str = "compile", isolate: bool = False,
                extra: Sequence[str] = (), model_name: str = MODEL,
                seconds: float = 10.0) -> Case:
    """A case that mutates a base model: mutate(model, work) edits the proto in place (or
    returns a new proto, or bytes to write as the model file)."""
    def make(work: Path, assets: Assets) -> list[str]:
        m = assets.model(base)
        r = mutate(m, work)
        data = r if isinstance(r, bytes) else (
            r if isinstance(r, onnx.ModelProto) else m).SerializeToString()
        try:
            (work / model_name).write_bytes(data)
        except OSError:  # a name the file system refuses (too long): snnc gets the path
            pass
        assets.write_calib(work, base)
        if cmd in ("compile-eval", "check"):
            assets.write_data(work, base)
        if cmd == "check":
            return ["check", model_name]
        if cmd == "opt":
            return ["opt", model_name]
        if cmd == "compile-c":
            return _compile(model_name, "--backend", "c", *extra)
        return _compile(model_name, *extra)

    then: tuple[tuple[str, ...], ...] = ()
    if cmd == "check":
        then = (tuple(_compile(model_name, *extra)),)
    elif cmd == "compile-eval":
        then = (tuple(_eval(diag=True)),)
    checks = (check_c_builds,) if cmd == "compile-c" else ()
    outputs = (OUT,) if cmd != "opt" else ()
    return Case(cls, f"{name}@{cmd}", desc + ("" if cmd == "compile" else f" [{cmd}]"),
                make, then=then, isolate=isolate, checks=checks, outputs=outputs,
                seconds=seconds)


# ---------------------------------------------------------------------- onnx-attr ---------
INT_POOL = (0, -1, -2, 1, 2, 3, 7, 100, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 10 ** 10,
            2 ** 62, 2 ** 63 - 1, -(2 ** 63))

#: (node, attribute, values) of small_cnn that the catalogue sets
ATTR_EDITS: list[tuple[str, str, list[Any]]] = [
    ("conv1", "strides", [[0, 0], [-1, 1], [0, 1], [10 ** 9, 1], [2 ** 63 - 1, 1], [1]]),
    ("conv1", "pads", [[-1, -1, -1, -1], [100000] * 4, [1, 1], [2 ** 62] * 4, [-5, 0, 0, 0]]),
    ("conv1", "kernel_shape", [[0, 0], [-3, 3], [5, 5], [1], [2 ** 40, 3]]),
    ("conv1", "dilations", [[0, 0], [-1, -1], [10 ** 6, 1], [2 ** 62, 1]]),
    ("conv1", "group", [0, -1, 7, 10 ** 9]),
    ("conv1", "auto_pad", ["SAME_UPPER", "VALID", "bogus"]),
    ("pool1", "kernel_shape", [[0, 0], [-2, 2], [100, 100], [2 ** 40, 2], [1]]),
    ("pool1", "strides", [[0, 0], [-2, -2], [10 ** 9, 1]]),
    ("pool1", "pads", [[-1, -1, -1, -1], [5, 5, 5, 5], [10 ** 6] * 4]),
    ("pool1", "dilations", [[0, 0], [10 ** 5, 1]]),
    ("pool1", "ceil_mode", [5, -1]),
    ("pool1", "auto_pad", ["SAME_LOWER", "bogus"]),
    ("flat", "axis", [99, -99, 0]),
    ("softmax", "axis", [99, -99]),
    ("fc", "transA", [1]),
    ("fc", "alpha", [float("nan"), float("inf"), 1e38]),
    ("fc", "beta", [float("nan"), -float("inf")]),
    ("bn1", "epsilon", [-1.0, float("nan"), 0.0, 1e38]),
    ("bn1", "momentum", [float("nan")]),
]


def _attr_mutation(node: str, key: str, value: Any, op_type: str | None = None):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        n = _node(m, node)
        if op_type:
            n.op_type = op_type
        _set_attr(n, key, value)
    return mutate


def _fixed_onnx_attr() -> list[Case]:
    out = []
    for node, key, values in ATTR_EDITS:
        for v in values:
            out.append(_model_case("onnx-attr", f"{node}.{key}={v}",
                                   f"small_cnn: {node}.{key} = {v!r}",
                                   _attr_mutation(node, key, v),
                                   isolate=_big(v)))
    # the same hostile windows on AveragePool (pool1 retyped)
    for key, v in (("kernel_shape", [0, 0]), ("strides", [0, 0]), ("pads", [-1, -1, -1, -1]),
                   ("count_include_pad", 7), ("kernel_shape", [13, 13])):
        out.append(_model_case("onnx-attr", f"avgpool.{key}={v}",
                               f"small_cnn, pool1 as AveragePool: {key} = {v!r}",
                               _attr_mutation("pool1", key, v, "AveragePool")))
    # attributes that do not belong, or a missing required one
    out.append(_model_case("onnx-attr", "conv-unknown-attr", "conv1 gets attribute 'bogus'",
                           _attr_mutation("conv1", "bogus", [1, 2, 3])))
    out.append(_model_case("onnx-attr", "pool-no-kernel", "pool1 without kernel_shape",
                           _attr_mutation("pool1", "kernel_shape", None)))
    out.append(_model_case("onnx-attr", "pool-kernel-string", "pool1.kernel_shape = 'abc'",
                           _attr_mutation("pool1", "kernel_shape", "abc")))
    out.append(_model_case("onnx-attr", "conv-strides-float", "conv1.strides = [1.5, 1.5]",
                           _attr_mutation("conv1", "strides", [1.5, 1.5])))
    return out


def _big(v: Any) -> bool:
    vals = v if isinstance(v, list) else [v]
    return any(isinstance(x, int) and abs(x) >= 10 ** 5 for x in vals)


def _stream_onnx_attr(rng: np.random.Generator) -> Iterator[Case]:
    k = 0
    while True:
        node, key, _ = ATTR_EDITS[rng.integers(len(ATTR_EDITS))]
        if key in ("auto_pad", "alpha", "beta", "epsilon", "momentum"):
            continue
        if key in ("group", "axis", "transA", "ceil_mode"):
            v: Any = int(rng.choice(INT_POOL))
        else:
            length = int(rng.choice([0, 1, 2, 2, 2, 3, 4, 4, 5]))
            v = [int(rng.choice(INT_POOL)) for _ in range(length)]
        cmd = str(rng.choice(["compile", "compile", "check", "compile-eval"]))
        yield _model_case("onnx-attr", f"r{k}", f"small_cnn: {node}.{key} = {v!r}",
                          _attr_mutation(node, key, v), cmd=cmd, isolate=_big(v))
        k += 1


# ---------------------------------------------------------------------- onnx-shape --------
def _reshape_before_fc(shape: Sequence[int]):
    """Flatten -> Reshape(f, shape) (an int64 initializer)."""
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        n = _node(m, "flat")
        n.op_type = "Reshape"
        del n.attribute[:]
        n.input.append("fuzz_shape")
        m.graph.initializer.append(nh.from_array(np.asarray(shape, np.int64), "fuzz_shape"))
    return mutate


def _input_dims_mutation(dims: Sequence[int | str]):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        _set_input_dims(m, dims)
    return mutate


def _output_dims_mutation(dims: Sequence[int | str]):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        t = m.graph.output[0].type.tensor_type
        del t.shape.dim[:]
        for d in dims:
            dim = t.shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d
    return mutate


def _value_info_huge(m: onnx.ModelProto, work: Path) -> None:
    m.graph.value_info.append(h.make_tensor_value_info("r1", TensorProto.FLOAT,
                                                       [10 ** 10, 6, 10 ** 6, 10 ** 6]))


def _insert_before_fc(op: str, inits: dict[str, np.ndarray], **attrs):
    """Insert node `op`(f, *inits) between Flatten and Gemm."""
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        fc = _node(m, "fc")
        fc.input[0] = "fz"
        node = h.make_node(op, ["f", *inits], ["fz"], name=f"fuzz_{op.lower()}", **attrs)
        idx = list(m.graph.node).index(fc)
        m.graph.node.insert(idx, node)
        for k, v in inits.items():
            m.graph.initializer.append(nh.from_array(v, k))
    return mutate


def _constant_of_shape(m: onnx.ModelProto, work: Path) -> None:
    """A ConstantOfShape making a 10^10-element tensor added to the logits."""
    m.graph.node.insert(0, h.make_node(
        "ConstantOfShape", ["fz_shape"], ["fz_big"], name="fuzz_const",
        value=nh.from_array(np.zeros(1, np.float32))))
    m.graph.initializer.append(nh.from_array(np.asarray([10 ** 10, 10], np.int64), "fz_shape"))
    sm = _node(m, "softmax")
    sm.input[0] = "fz_sum"
    m.graph.node.insert(len(m.graph.node) - 1,
                        h.make_node("Add", ["logits", "fz_big"], ["fz_sum"], name="fuzz_add"))


def _fixed_onnx_shape() -> list[Case]:
    out = []
    for name, dims, iso in (
            ("batch-1e10", [10 ** 10, 1, 12, 12], True), ("batch-0", [0, 1, 12, 12], False),
            ("batch-2^62", [2 ** 62, 1, 12, 12], True),
            ("hw-1e5", ["N", 1, 10 ** 5, 10 ** 5], True),
            ("hw-2^31", ["N", 1, 2 ** 31, 12], True), ("c-1e9", ["N", 10 ** 9, 12, 12], True),
            ("hw-0", ["N", 1, 12, 0], False), ("rank-3", ["N", 1, 12], False),
            ("rank-6", ["N", 1, 12, 12, 1, 1], False), ("rank-0", [], False),
            ("dim-neg", ["N", 1, -1, 12], False), ("dim-param-all", ["a", "b", "c", "d"], False),
            ("hw-mismatch", ["N", 1, 24, 24], False), ("channels-3", ["N", 3, 12, 12], False)):
        out.append(_model_case("onnx-shape", f"input-{name}", f"small_cnn: input dims {dims}",
                               _input_dims_mutation(dims), isolate=iso))
    for name, shape, iso in (
            ("1e10", [10 ** 10, -1], True), ("neg1e10", [-1, 10 ** 10], True),
            ("zeros", [0, 0], False), ("two-minus1", [-1, -1], False),
            ("rank3", [1, 2, 108], False), ("2^63", [2 ** 63 - 1, 1], True),
            ("minus2", [-2, 216], False), ("empty", [], False)):
        out.append(_model_case("onnx-shape", f"reshape-{name}",
                               f"small_cnn: Flatten replaced by Reshape(shape={shape})",
                               _reshape_before_fc(shape), isolate=iso))
    for name, dims in (("1e10", [10 ** 10, 10 ** 10]), ("wrong", ["N", 11]),
                       ("rank1", [10]), ("neg", [-5, 10])):
        out.append(_model_case("onnx-shape", f"output-{name}",
                               f"small_cnn: graph output declared {dims}",
                               _output_dims_mutation(dims), isolate=name == "1e10"))
    out.append(_model_case("onnx-shape", "value-info-huge",
                           "value_info declares r1 as [1e10, 6, 1e6, 1e6]", _value_info_huge,
                           isolate=True))
    out.append(_model_case("onnx-shape", "constant-of-shape-1e10",
                           "ConstantOfShape([1e10, 10]) added to the logits",
                           _constant_of_shape, isolate=True))
    big = np.asarray([1, 10 ** 9], np.int64)
    out.append(_model_case("onnx-shape", "expand-1e9", "Expand(f, [1, 1e9]) before fc",
                           _insert_before_fc("Expand", {"fz_s": big}), isolate=True))
    out.append(_model_case("onnx-shape", "tile-1e9", "Tile(f, [1, 1e9]) before fc",
                           _insert_before_fc("Tile", {"fz_r": big}), isolate=True))
    out.append(_model_case("onnx-shape", "pad-1e9", "Pad(f, pads 1e9) before fc",
                           _insert_before_fc("Pad", {"fz_p": np.asarray(
                               [0, 10 ** 9, 0, 10 ** 9], np.int64)}), isolate=True))
    out.append(_model_case("onnx-shape", "pad-negative", "Pad(f, pads -500) before fc",
                           _insert_before_fc("Pad", {"fz_p": np.asarray(
                               [0, -500, 0, 0], np.int64)})))
    out.append(_model_case("onnx-shape", "unsqueeze-axes-99", "Unsqueeze(f, axes=[99])",
                           _insert_before_fc("Unsqueeze", {"fz_a": np.asarray([99], np.int64)})))
    out.append(_model_case("onnx-shape", "mnist-batch-1e10", "mnist_cnn: input batch 1e10",
                           _input_dims_mutation([10 ** 10, 1, 28, 28]), base="mnist",
                           isolate=True))
    return out


def _stream_onnx_shape(rng: np.random.Generator) -> Iterator[Case]:
    k = 0
    while True:
        kind = int(rng.integers(3))
        vals = [int(rng.choice(INT_POOL)) for _ in range(int(rng.integers(0, 5)))]
        cmd = str(rng.choice(["compile", "check", "compile-eval"]))
        if kind == 0:
            dims: list[int | str] = ["N", *vals]
            yield _model_case("onnx-shape", f"r{k}", f"small_cnn: input dims {dims}",
                              _input_dims_mutation(dims), cmd=cmd, isolate=True)
        elif kind == 1:
            yield _model_case("onnx-shape", f"r{k}", f"small_cnn: Reshape(shape={vals})",
                              _reshape_before_fc(vals), cmd=cmd, isolate=True)
        else:
            yield _model_case("onnx-shape", f"r{k}", f"small_cnn: output dims {vals}",
                              _output_dims_mutation(vals), cmd=cmd, isolate=True)
        k += 1


# ---------------------------------------------------------------------- onnx-init ---------
def _tensor_edit(name: str, fn: Callable[[onnx.TensorProto], None]):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        fn(_init(m, name))
    return mutate


def _set_values(name: str, values: Callable[[np.ndarray], np.ndarray]):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        t = _init(m, name)
        a = values(nh.to_array(t).copy())
        t.CopyFrom(nh.from_array(np.asarray(a), name))
    return mutate


def _raw_len(delta: int):
    def fn(t: onnx.TensorProto) -> None:
        raw = t.raw_data
        t.raw_data = raw[:len(raw) + delta] if delta < 0 else raw + b"\x01" * delta
    return fn


def _external(name: str, location: str, *, offset: int | None = None,
              length: int | None = None, write: dict[str, bytes] | None = None,
              symlinks: dict[str, str] | None = None):
    """Move initializer `name` to external data at `location` (files to write: `write`,
    relative to work; `symlinks`: link -> target)."""
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        t = _init(m, name)
        raw = t.raw_data
        for rel, data in (write or {}).items():
            p = work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(raw if data == b"=" else data)
        for link, target in (symlinks or {}).items():
            os.symlink(target, work / link)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        entries = {"location": location}
        if offset is not None:
            entries["offset"] = str(offset)
        if length is not None:
            entries["length"] = str(length)
        for k, v in entries.items():
            e = t.external_data.add()
            e.key, e.value = k, v
    return mutate


def _fixed_onnx_init() -> list[Case]:
    def mk(name, desc, mutate, **kw):
        return _model_case("onnx-init", name, desc, mutate, **kw)

    def dtype(dt):
        def fn(t):
            t.data_type = dt
        return fn

    def dims(d):
        def fn(t):
            del t.dims[:]
            t.dims.extend(d)
        return fn

    def also_float_data(t):
        t.float_data.extend([1.0] * 5)

    def float_data_short(t):
        a = nh.to_array(t).ravel()
        t.ClearField("raw_data")
        t.float_data.extend(a[:-3].tolist())

    out = [
        mk("raw-short", "w1 raw_data 4 bytes short", _tensor_edit("w1", _raw_len(-4))),
        mk("raw-short-1", "w1 raw_data 1 byte short", _tensor_edit("w1", _raw_len(-1))),
        mk("raw-long", "w2 raw_data 1000 bytes long", _tensor_edit("w2", _raw_len(1000))),
        mk("raw-empty", "w2 raw_data empty", _tensor_edit("w2", _raw_len(-10 ** 9))),
        mk("dims-grow", "w1 dims [6,1,3,4] (data for [6,1,3,3])",
           _tensor_edit("w1", dims([6, 1, 3, 4]))),
        mk("dims-huge", "w2 dims [10, 1e10] (data for [10, 216])",
           _tensor_edit("w2", dims([10, 10 ** 10])), isolate=True),
        mk("dims-2^62", "w2 dims [2^62, 2^62]", _tensor_edit("w2", dims([2 ** 62, 2 ** 62])),
           isolate=True),
        mk("dims-neg", "w1 dims [6,-1,3,3]", _tensor_edit("w1", dims([6, -1, 3, 3]))),
        mk("dims-rank1", "w1 dims [54] (a conv weight of rank 1)",
           _tensor_edit("w1", dims([54]))),
        mk("float-data-short", "w1 in float_data, 3 values short",
           _tensor_edit("w1", float_data_short)),
        mk("raw-and-float-data", "b1 has both raw_data and float_data",
           _tensor_edit("b1", also_float_data)),
        mk("zero-conv-out", "w1 (0,1,3,3), b1 (0,) and BN params of 0 channels",
           _zero_channels),
        mk("zero-fc", "w2 (10, 0)", _set_values("w2", lambda a: np.zeros((10, 0), np.float32))),
        mk("zero-bias", "b2 (0,)", _set_values("b2", lambda a: np.zeros(0, np.float32))),
        mk("scalar-weight", "w1 a scalar", _set_values("w1", lambda a: np.float32(0.5))),
        mk("nan-w1", "w1 all NaN", _set_values("w1", lambda a: a * np.nan)),
        mk("nan-one", "one NaN in w2", _set_values("w2", _poke(np.nan))),
        mk("inf-b1", "b1 +Inf", _set_values("b1", lambda a: a + np.inf)),
        mk("neginf-w2", "one -Inf in w2", _set_values("w2", _poke(-np.inf))),
        mk("1e38-w1", "w1 all +-1e38", _set_values("w1", lambda a: np.sign(a) * 1e38)),
        mk("3.4e38-w2", "w2 all float32 max",
           _set_values("w2", lambda a: np.full_like(a, np.finfo(np.float32).max))),
        mk("1e38-bias", "b2 = 1e38", _set_values("b2", lambda a: np.full_like(a, 1e38))),
        mk("subnormal-w1", "w1 all 1e-45 (subnormal)",
           _set_values("w1", lambda a: np.full_like(a, 1e-45))),
        mk("zero-w-all", "every weight zero (dead network)",
           lambda m, w: [t.CopyFrom(nh.from_array(np.zeros_like(nh.to_array(t)), t.name))
                         for t in m.graph.initializer if t.name in ("w1", "b1", "w2", "b2")]
           and None),
        mk("bn-var-neg", "BN variance -1", _set_values("var", lambda a: -np.ones_like(a))),
        mk("bn-var-zero-eps0", "BN variance 0 and epsilon 0",
           lambda m, w: (_set_values("var", np.zeros_like)(m, w),
                         _set_attr(_node(m, "bn1"), "epsilon", 0.0)) and None),
        mk("bn-scale-1e38", "BN scale 1e38", _set_values("g", lambda a: a * 1e38)),
        mk("missing-w2", "initializer w2 removed",
           lambda m, w: m.graph.initializer.remove(_init(m, "w2"))),
        mk("dup-init", "two initializers named w1 with different shapes",
           lambda m, w: m.graph.initializer.append(nh.from_array(np.ones((3, 3), np.float32),
                                                                 "w1"))),
        mk("init-as-input", "w1 also a graph input declared [7, 7]",
           lambda m, w: m.graph.input.append(h.make_tensor_value_info(
               "w1", TensorProto.FLOAT, [7, 7]))),
        mk("sparse-init", "a sparse_initializer for w2",
           lambda m, w: m.graph.sparse_initializer.append(h.make_sparse_tensor(
               nh.from_array(np.ones(3, np.float32), "w2"),
               nh.from_array(np.asarray([0, 5, 10 ** 9], np.int64), "w2_idx"), [10, 216]))),
        mk("w-float64", "w2 stored as float64",
           _set_values("w2", lambda a: a.astype(np.float64))),
        mk("w-float16", "w1 stored as float16",
           _set_values("w1", lambda a: a.astype(np.float16))),
        mk("w-int64", "w2 stored as int64", _set_values("w2", lambda a: (a * 10).astype(
            np.int64))),
        mk("w-bool", "b1 stored as bool", _set_values("b1", lambda a: a > 0)),
        mk("w-string", "b2 a string tensor",
           _tensor_edit("b2", lambda t: t.CopyFrom(h.make_tensor(
               "b2", TensorProto.STRING, [10], [b"x"] * 10)))),
        mk("shape-float", "Reshape shape tensor as float32",
           lambda m, w: _reshape_before_fc([-1, 216])(m, w) or _tensor_edit(
               "fuzz_shape", lambda t: t.CopyFrom(nh.from_array(
                   np.asarray([-1, 216], np.float32), "fuzz_shape")))(m, w)),
    ]
    for dt, nm in ((TensorProto.INT64, "int64"), (TensorProto.DOUBLE, "double"),
                   (TensorProto.FLOAT16, "float16"), (TensorProto.STRING, "string"),
                   (0, "undefined"), (TensorProto.BOOL, "bool"), (999, "999"),
                   (TensorProto.COMPLEX64, "complex64")):
        out.append(mk(f"dtype-{nm}", f"w1 data_type set to {nm} (raw bytes unchanged)",
                      _tensor_edit("w1", dtype(dt))))
    raw = {"w.bin": b"="}
    out += [
        mk("ext-escape-dotdot", "w2 external data at ../escape.bin (exists, outside)",
           _escape_ext("../escape.bin")),
        mk("ext-escape-deep", "w2 external data at sub/../../../../etc/hostname",
           _external("w2", "sub/../../../../etc/hostname")),
        mk("ext-absolute", "w2 external data at /etc/hostname", _external("w2", "/etc/hostname")),
        mk("ext-dev-zero", "w2 external data at /dev/zero (endless)",
           _external("w2", "/dev/zero"), isolate=True),
        mk("ext-symlink-escape", "w2 external data at a symlink to ../escape.bin",
           _escape_ext("w.bin", link=True)),
        mk("ext-symlink-dev-zero", "w2 external data at a symlink to /dev/zero",
           _external("w2", "w.bin", symlinks={"w.bin": "/dev/zero"}), isolate=True),
        mk("ext-missing", "w2 external data file missing", _external("w2", "missing.bin")),
        mk("ext-dir", "w2 external data location '.'", _external("w2", ".")),
        mk("ext-offset-huge", "w2 external data offset 1e15",
           _external("w2", "w.bin", offset=10 ** 15, write=raw)),
        mk("ext-length-huge", "w2 external data length 1e12",
           _external("w2", "w.bin", length=10 ** 12, write=raw), isolate=True),
        mk("ext-length-neg", "w2 external data length -1",
           _external("w2", "w.bin", length=-1, write=raw)),
        mk("ext-short", "w2 external file 100 bytes short",
           lambda m, w: _external("w2", "w.bin", write={"w.bin": _init(m, "w2").raw_data[
               :-100]})(m, w)),
        mk("ext-nul", "w2 external data location 'w.bin\\x00../x'",
           _external("w2", "w.bin\x00../x", write=raw)),
        mk("ext-fifo", "w2 external data is a FIFO (blocks on open)",
           lambda m, w: (os.mkfifo(w / "w.fifo"), _external("w2", "w.fifo")(m, w)) and None,
           isolate=True),
        mk("ext-ok", "w2 external data in w.bin (valid)", _external("w2", "w.bin", write=raw)),
    ]
    return out


def _escape_ext(location: str, link: bool = False):
    """external data outside the case folder: work/../escape.bin (a sibling file)."""
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        esc = work.parent / "escape.bin"
        esc.write_bytes(_init(m, "w2").raw_data)
        _external("w2", location, symlinks={"w.bin": str(esc)} if link else None)(m, work)
    return mutate


def _zero_channels(m: onnx.ModelProto, work: Path) -> None:
    for name, shape in (("w1", (0, 1, 3, 3)), ("b1", (0,)), ("g", (0,)), ("be", (0,)),
                        ("mu", (0,)), ("var", (0,))):
        _init(m, name).CopyFrom(nh.from_array(np.zeros(shape, np.float32), name))


def _poke(value: float):
    def fn(a: np.ndarray) -> np.ndarray:
        a.flat[len(a.flat) // 2] = value
        return a
    return fn


INIT_NAMES = ("w1", "b1", "g", "be", "mu", "var", "w2", "b2")
FLOAT_POOL = (np.nan, np.inf, -np.inf, 1e38, -1e38, 3.4028235e38, 1e-45, 0.0, -0.0, 1e30)


def _stream_onnx_init(rng: np.random.Generator) -> Iterator[Case]:
    k = 0
    while True:
        name = str(rng.choice(INIT_NAMES))
        kind = int(rng.integers(4))
        cmd = str(rng.choice(["compile", "compile", "check", "compile-eval", "compile-c"]))
        if kind == 0:
            v = float(rng.choice(FLOAT_POOL))
            frac = float(rng.choice([0.01, 0.5, 1.0]))
            sub = int(rng.integers(1 << 30))

            def values(a, v=v, frac=frac, sub=sub):
                r = np.random.default_rng(sub)
                a = a.astype(np.float32)
                a[r.random(a.shape) < frac] = v
                return a
            yield _model_case("onnx-init", f"r{k}",
                              f"{name}: {frac:.0%} of the values set to {v!r}",
                              _set_values(name, values), cmd=cmd)
        elif kind == 1:
            d = int(rng.choice([-64, -8, -4, -3, -1, 1, 3, 4, 4096]))
            yield _model_case("onnx-init", f"r{k}", f"{name}: raw_data {d:+d} bytes",
                              _tensor_edit(name, _raw_len(d)), cmd=cmd)
        elif kind == 2:
            nd = [int(rng.choice((0, 1, 2, 3, 6, 10, 216, -1, 10 ** 9)))
                  for _ in range(int(rng.integers(0, 5)))]

            def dims(t, nd=nd):
                del t.dims[:]
                t.dims.extend(nd)
            yield _model_case("onnx-init", f"r{k}", f"{name}: dims set to {nd}",
                              _tensor_edit(name, dims), cmd=cmd, isolate=True)
        else:
            dt = int(rng.choice([0, 2, 3, 5, 6, 7, 9, 10, 11, 16, 17, 23, 1000]))

            def dtype(t, dt=dt):
                t.data_type = dt
            yield _model_case("onnx-init", f"r{k}", f"{name}: data_type set to {dt}",
                              _tensor_edit(name, dtype), cmd=cmd)
        k += 1


# ---------------------------------------------------------------------- onnx-graph --------
def _opset(version: int, domain: str = ""):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        del m.opset_import[:]
        m.opset_import.append(h.make_opsetid(domain, version))
    return mutate


def _cycle(m: onnx.ModelProto, work: Path) -> None:
    _node(m, "conv1").input[0] = "r1"  # conv1 reads relu1's output, which depends on conv1


def _self_loop(m: onnx.ModelProto, work: Path) -> None:
    n = _node(m, "relu1")
    n.input[0] = "r1"


def _shuffle_nodes(m: onnx.ModelProto, work: Path) -> None:
    nodes = list(m.graph.node)[::-1]
    del m.graph.node[:]
    m.graph.node.extend(nodes)


def _chain(n: int):
    """n extra Relu nodes between relu1 and pool1 (a very deep graph)."""
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        pool = _node(m, "pool1")
        prev = pool.input[0]
        new = []
        for i in range(n):
            new.append(h.make_node("Relu", [prev], [f"chain{i}"], name=f"chain{i}"))
            prev = f"chain{i}"
        pool.input[0] = prev
        idx = list(m.graph.node).index(pool)
        for i, node in enumerate(new):
            m.graph.node.insert(idx + i, node)
    return mutate


def _recursive_function(m: onnx.ModelProto, work: Path) -> None:
    """A model-local function that calls itself, used by a node."""
    f = h.make_function("fuzz.local", "Rec", ["a"], ["b"],
                        [h.make_node("Rec", ["a"], ["b"], domain="fuzz.local")],
                        [h.make_opsetid("", 13), h.make_opsetid("fuzz.local", 1)])
    m.functions.append(f)
    m.opset_import.append(h.make_opsetid("fuzz.local", 1))
    n = _node(m, "relu1")
    n.op_type, n.domain = "Rec", "fuzz.local"


def _unsupported_with_subgraph(m: onnx.ModelProto, work: Path) -> None:
    n = _node(m, "relu1")
    body = h.make_graph([h.make_node("Relu", ["bn1"], ["r1_"])], "then",
                        [], [h.make_tensor_value_info("r1_", TensorProto.FLOAT, None)])
    n.CopyFrom(h.make_node("If", ["cond"], ["r1"], name="relu1", then_branch=body,
                           else_branch=body))
    m.graph.initializer.append(nh.from_array(np.asarray(True), "cond"))


def _fixed_onnx_graph() -> list[Case]:
    def mk(name, desc, mutate, **kw):
        return _model_case("onnx-graph", name, desc, mutate, **kw)

    out = []
    for v in (1, 6, 7, 8, 12, 22, 23, 99, 10 ** 6, -1, 0):
        out.append(mk(f"opset-{v}", f"default opset {v}", _opset(v)))
    out += [
        mk("opset-none", "no opset_import at all", lambda m, w: m.ClearField("opset_import")),
        mk("opset-ml-only", "only the ai.onnx.ml opset", _opset(3, "ai.onnx.ml")),
        mk("opset-dup", "two default opsets (13 and 7)",
           lambda m, w: m.opset_import.append(h.make_opsetid("", 7))),
        mk("ir-version-0", "ir_version 0", lambda m, w: setattr(m, "ir_version", 0)),
        mk("ir-version-huge", "ir_version 2^62", lambda m, w: setattr(m, "ir_version", 2 ** 62)),
        mk("custom-domain-node", "relu1 in domain com.evil",
           lambda m, w: setattr(_node(m, "relu1"), "domain", "com.evil")),
        mk("no-outputs", "graph outputs removed", lambda m, w: m.graph.ClearField("output")),
        mk("no-outputs-eval", "graph outputs removed", lambda m, w: m.graph.ClearField("output"),
           cmd="compile-eval"),
        mk("output-undefined", "graph output names a value no node makes",
           lambda m, w: setattr(m.graph.output[0], "name", "nowhere")),
        mk("output-is-input", "the graph output is the input x",
           lambda m, w: m.graph.output[0].CopyFrom(m.graph.input[0])),
        mk("output-is-init", "the graph output is initializer w2",
           lambda m, w: setattr(m.graph.output[0], "name", "w2")),
        mk("output-twice", "the same output listed twice",
           lambda m, w: m.graph.output.append(copy.deepcopy(m.graph.output[0]))),
        mk("output-extra-hidden", "r1 (a hidden value) also an output",
           lambda m, w: m.graph.output.append(h.make_tensor_value_info(
               "r1", TensorProto.FLOAT, None)), cmd="compile-eval"),
        mk("no-nodes", "no nodes, output = input",
           lambda m, w: (m.graph.ClearField("node"),
                         m.graph.output[0].CopyFrom(m.graph.input[0])) and None),
        mk("no-inputs", "graph input removed", lambda m, w: m.graph.ClearField("input")),
        mk("two-inputs", "a second graph input nobody uses",
           lambda m, w: m.graph.input.append(h.make_tensor_value_info(
               "x2", TensorProto.FLOAT, ["N", 3]))),
        mk("input-int64", "the input is int64",
           lambda m, w: setattr(m.graph.input[0].type.tensor_type, "elem_type",
                                TensorProto.INT64)),
        mk("input-string", "the input is a string tensor",
           lambda m, w: setattr(m.graph.input[0].type.tensor_type, "elem_type",
                                TensorProto.STRING)),
        mk("input-untyped", "the input has no type",
           lambda m, w: m.graph.input[0].ClearField("type")),
        mk("input-sequence", "the input is a sequence type",
           lambda m, w: m.graph.input[0].CopyFrom(h.make_tensor_sequence_value_info(
               "x", TensorProto.FLOAT, None))),
        mk("dup-node-names", "conv1 and relu1 both named 'same'",
           lambda m, w: [setattr(_node(m, n), "name", "same") for n in ("conv1", "relu1")]
           and None),
        mk("dup-outputs", "relu1 and pool1 both produce 'r1'",
           lambda m, w: _node(m, "pool1").output.__setitem__(0, "r1")),
        mk("output-shadows-init", "conv1 writes into initializer name w2",
           lambda m, w: (_node(m, "conv1").output.__setitem__(0, "w2"),
                         _node(m, "bn1").input.__setitem__(0, "w2")) and None),
        mk("input-shadows-init", "an initializer named x (the input's name)",
           lambda m, w: m.graph.initializer.append(nh.from_array(
               np.ones((1, 1, 12, 12), np.float32), "x"))),
        mk("cycle", "conv1 reads relu1's output (a cycle)", _cycle),
        mk("cycle-check", "conv1 reads relu1's output (a cycle)", _cycle, cmd="check"),
        mk("self-loop", "relu1 reads its own output", _self_loop),
        mk("reversed-order", "nodes in reverse order", _shuffle_nodes),
        mk("dangling-input", "conv1 reads 'nowhere'",
           lambda m, w: _node(m, "conv1").input.__setitem__(0, "nowhere")),
        mk("empty-input-name", "conv1's weight input is ''",
           lambda m, w: _node(m, "conv1").input.__setitem__(1, "")),
        mk("too-many-inputs", "relu1 gets 5 inputs",
           lambda m, w: _node(m, "relu1").input.extend(["w1", "b1", "w2", "b2"])),
        mk("no-node-inputs", "fc has no inputs",
           lambda m, w: _node(m, "fc").ClearField("input")),
        mk("no-node-outputs", "pool1 has no outputs",
           lambda m, w: _node(m, "pool1").ClearField("output")),
        mk("empty-op-type", "relu1 op_type ''", lambda m, w: setattr(_node(m, "relu1"),
                                                                   "op_type", "")),
        mk("op-type-nul", "relu1 op_type 'Relu\\x00'",
           lambda m, w: setattr(_node(m, "relu1"), "op_type", "Relu\x00")),
        mk("unsupported-lstm", "relu1 as an LSTM",
           lambda m, w: setattr(_node(m, "relu1"), "op_type", "LSTM"), cmd="check"),
        mk("unsupported-if", "relu1 as an If with subgraphs", _unsupported_with_subgraph),
        mk("recursive-function", "a local function that calls itself", _recursive_function),
        mk("recursive-function-check", "a local function that calls itself",
           _recursive_function, cmd="check"),
        mk("chain-2000", "2000 Relu nodes in a row", _chain(2000)),
        mk("chain-20000", "20000 Relu nodes in a row", _chain(20000), isolate=True,
           seconds=60.0),
        mk("chain-2000-c", "2000 Relu nodes in a row", _chain(2000), cmd="compile-c"),
        mk("maxpool-after-concat", "pool1 reads Concat(r1, r1) (issue: check vs compile)",
           _concat_before_pool, cmd="check"),
    ]
    return out


def _concat_before_pool(m: onnx.ModelProto, work: Path) -> None:
    pool = _node(m, "pool1")
    pool.input[0] = "cat"
    m.graph.node.insert(list(m.graph.node).index(pool),
                        h.make_node("Concat", ["r1", "r1"], ["cat"], axis=1, name="cat"))
    fc_w = _init(m, "w2")
    fc_w.CopyFrom(nh.from_array(np.ones((10, 432), np.float32) * 0.01, "w2"))


def _stream_onnx_graph(rng: np.random.Generator) -> Iterator[Case]:
    """Random rewiring: a node input pointed at another value, or a node removed."""
    k = 0
    while True:
        seed = int(rng.integers(1 << 30))
        kind = str(rng.choice(["rewire", "remove", "swap-op", "opset"]))
        cmd = str(rng.choice(["compile", "check", "compile-eval"]))

        def mutate(m, work, seed=seed, kind=kind):
            r = np.random.default_rng(seed)
            nodes = list(m.graph.node)
            n = nodes[r.integers(len(nodes))]
            if kind == "rewire" and n.input:
                vals = [v.name for v in m.graph.input] + [o for x in nodes for o in x.output]
                vals += [t.name for t in m.graph.initializer]
                n.input[r.integers(len(n.input))] = vals[r.integers(len(vals))]
            elif kind == "remove":
                m.graph.node.remove(n)
            elif kind == "swap-op":
                n.op_type = str(r.choice(["Relu", "MaxPool", "Conv", "Gemm", "Add", "Concat",
                                          "Flatten", "Softmax", "AveragePool", "Clip", "Sum",
                                          "BatchNormalization", "Reshape", "Squeeze"]))
            else:
                _opset(int(r.choice([7, 9, 10, 11, 12, 14, 17, 19, 21, 25])))(m, work)
        yield _model_case("onnx-graph", f"r{k}", f"small_cnn: random {kind} (seed {seed})",
                          mutate, cmd=cmd)
        k += 1


# ---------------------------------------------------------------------- onnx-names --------
HOSTILE_NAMES: dict[str, str] = {
    "cr": "conv\rFORGED", "clear": "\x1b[2Jconv", "nul": "conv\x00x", "vt": "conv\x0bx",
    "ls": "conv\u2028x", "ps": "conv\u2029x", "rlo": "conv\u202etxt.exe",
    "osc": "\x1b]0;pwned\x07", "nl": "conv\nsnnc: error: forged", "bell": "a\x07b",
    "del": "a\x7fb", "c1": "a\x9b2Jb", "bs": "ab\x08\x08XY", "nel": "a\x85b",
    "zwsp": "a\u200bb", "bom": "\ufeffconv", "long5k": "n" * 5000, "long70k": "L" * 70000,
    "emoji": "\U0001F642conv", "shell": "a'\"`$(touch PWNED)", "path": "../../../etc/passwd",
    "empty": "", "spaces": "   ", "format": "%s%n%x{}{0}", "backslash": "a\\b\\",
    "c-code": "int main(void){return 1;}//", "c-comment": "*/ #error x /*", "tab": "a\tb",
    "quote-json": "\"}]},{\"kind\":\"x", "dot": ".", "keyword": "int",
}
NAME_TARGETS = ("node", "value", "input", "output", "initializer", "graph", "unsupported",
                "doc", "error-node")


def _name_mutation(target: str, s: str):
    def mutate(m: onnx.ModelProto, work: Path) -> None:
        if target == "node":
            for n in m.graph.node:
                if n.name in ("conv1", "relu1", "fc"):
                    n.name = f"{s}{n.name}" if len(s) < 1000 else s + n.name
        elif target == "value":
            _rename_value(m, "r1", s)
        elif target == "input":
            _rename_value(m, "x", s)
        elif target == "output":
            _rename_value(m, m.graph.output[0].name, s)
        elif target == "initializer":
            _rename_value(m, "w1", s)
        elif target == "graph":
            m.graph.name = s
        elif target == "doc":
            m.doc_string = s
            m.producer_name = s
            m.graph.doc_string = s
        elif target == "unsupported":  # an unsupported node with the name: echoed in errors
            n = _node(m, "relu1")
            n.op_type, n.name = "Erf", s
        elif target == "error-node":  # a supported node whose attribute is refused
            n = _node(m, "pool1")
            n.name = s
            _set_attr(n, "kernel_shape", [0, 0])
    return mutate


def _fixed_onnx_names() -> list[Case]:
    out = []
    cmds = ("compile", "check", "compile-c", "opt", "compile-eval")
    for i, (key, s) in enumerate(HOSTILE_NAMES.items()):
        for j, target in enumerate(("node", "value", "unsupported", "error-node")):
            cmd = cmds[(i + j) % len(cmds)] if target in ("node", "value") else (
                "compile" if (i + j) % 2 else "check")
            out.append(_model_case("onnx-names", f"{target}-{key}",
                                   f"{target} name {_hostile(s)}", _name_mutation(target, s),
                                   cmd=cmd))
    for target in ("input", "output", "initializer", "graph", "doc"):
        for key in ("clear", "nl", "long70k", "rlo"):
            s = HOSTILE_NAMES[key]
            out.append(_model_case("onnx-names", f"{target}-{key}",
                                   f"{target} name {_hostile(s)}", _name_mutation(target, s),
                                   cmd="compile-c" if target in ("input", "output")
                                   else "compile-eval"))
    # the model file's own name (its stem names the C files)
    for key, s in (("clear", "\x1b[2Jm"), ("nl", "m\nx"), ("cr", "m\rFORGED"),
                   ("long250", "m" * 250), ("long300", "m" * 300), ("dash", "-m"),
                   ("space", "m odel"), ("colon", "m:x"), ("dollar", "m$(x)"),
                   ("main_example", "main_example"), ("Makefile", "Makefile"),
                   ("CMakeLists", "CMakeLists"), ("footprint", "footprint"),
                   ("rlo", "m\u202etxt"), ("hash", "m#x"), ("percent", "m%d")):
        fname = s + ".onnx"
        for cmd in ("compile-c", "check"):
            out.append(_model_case("onnx-names", f"file-{key}",
                                   f"model file named {_hostile(fname)}",
                                   lambda m, w: None, cmd=cmd, model_name=fname))
    return out


def _stream_onnx_names(rng: np.random.Generator) -> Iterator[Case]:
    keys = list(HOSTILE_NAMES)
    k = 0
    while True:
        s = "".join(HOSTILE_NAMES[keys[i]][:200]
                    for i in rng.integers(len(keys), size=int(rng.integers(1, 4))))
        target = str(rng.choice(NAME_TARGETS))
        cmd = str(rng.choice(MODEL_COMMANDS))
        yield _model_case("onnx-names", f"r{k}", f"{target} name {_hostile(s)}",
                          _name_mutation(target, s), cmd=cmd)
        k += 1


# ---------------------------------------------------------------------- onnx-bytes --------
def _bytes_mutation(kind: str, seed: int):
    def mutate(m: onnx.ModelProto, work: Path) -> bytes:
        b = bytearray(m.SerializeToString())
        r = np.random.default_rng(seed)
        if kind == "truncate":
            return bytes(b[:int(r.integers(0, len(b)))])
        if kind == "flip":
            for _ in range(int(r.integers(1, 8))):
                b[r.integers(len(b))] ^= 1 << int(r.integers(8))
            return bytes(b)
        if kind == "smash":  # a run of random bytes
            i = int(r.integers(len(b)))
            n = int(r.integers(1, 64))
            b[i:i + n] = r.integers(0, 256, n, dtype=np.uint8).tobytes()
            return bytes(b)
        if kind == "varint":  # a huge length-delimited field inserted
            i = int(r.integers(len(b)))
            return bytes(b[:i]) + b"\x0a\xff\xff\xff\xff\x0f" + bytes(b[i:])
        if kind == "splice":  # a copy of a random slice inserted elsewhere
            i, j = sorted(int(v) for v in r.integers(0, len(b), 2))
            at = int(r.integers(len(b)))
            return bytes(b[:at]) + bytes(b[i:j]) + bytes(b[at:])
        if kind == "ff":
            i = int(r.integers(len(b)))
            b[i:i + 16] = b"\xff" * 16
            return bytes(b)
        raise KeyError(kind)
    return mutate


BYTE_KINDS = ("truncate", "flip", "smash", "varint", "splice", "ff")


def _special_model_case(name: str, desc: str, *, data: bytes | None = None,
                        link: str | None = None, fifo: bool = False, directory: bool = False,
                        path: str = MODEL, cmd: str = "compile", isolate: bool = False) -> Case:
    def make(work: Path, assets: Assets) -> list[str]:
        assets.write_calib(work)
        p = work / path
        if data is not None:
            p.write_bytes(data)
        elif link is not None:
            os.symlink(link, p)
        elif fifo:
            os.mkfifo(p)
        elif directory:
            p.mkdir()
        return ["check", path] if cmd == "check" else _compile(path)
    return Case("onnx-bytes", name, desc, make, isolate=isolate,
                then=(tuple(_compile(path)),) if cmd == "check" else ())


def _fixed_onnx_bytes() -> list[Case]:
    out = []
    for i, kind in enumerate(BYTE_KINDS):
        for base in ("small", "mnist"):
            out.append(_model_case("onnx-bytes", f"{kind}-{base}",
                                   f"{base}: byte mutation '{kind}' (seed {i})",
                                   _bytes_mutation(kind, i), base=base))
    out += [
        _special_model_case("empty-file", "an empty model file", data=b""),
        _special_model_case("text-file", "a text file", data=b"hello, world\n" * 10),
        _special_model_case("zip-file", "an .npz as the model", data=_npz({"x.npy": _npy(
            np.zeros(3))})),
        _special_model_case("png-header", "a PNG header", data=b"\x89PNG\r\n\x1a\n" + bytes(64)),
        _special_model_case("all-ff", "64 KiB of 0xff", data=b"\xff" * 65536),
        _special_model_case("huge-varint", "one field declaring a 2^63 length",
                            data=b"\x3a\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
        _special_model_case("dev-zero", "the model is a symlink to /dev/zero", link="/dev/zero",
                            isolate=True),
        _special_model_case("dev-null", "the model is /dev/null (a symlink)", link="/dev/null"),
        _special_model_case("fifo", "the model is a FIFO (blocks on open)", fifo=True,
                            isolate=True),
        _special_model_case("directory", "the model path is a directory", directory=True),
        _special_model_case("missing", "the model does not exist"),
        _special_model_case("symlink-loop", "the model is a symlink to itself", link=MODEL),
        _special_model_case("dangling-link", "the model is a dangling symlink", link="nowhere"),
        _special_model_case("trailing-slash", "the model path ends with '/'", data=b"x",
                            path="m.onnx/"),
        _special_model_case("empty-path", "the model path is ''", path=""),
        _special_model_case("dash-path", "the model path is '-'", path="-"),
        _special_model_case("check-empty", "snnc check on an empty file", data=b"",
                            cmd="check"),
        _special_model_case("check-dir", "snnc check on a directory", directory=True,
                            cmd="check"),
        _special_model_case("check-text", "snnc check on a text file",
                            data=b"\x1b[2Jgarbage\r\n", cmd="check"),
    ]
    return out


def _stream_onnx_bytes(rng: np.random.Generator) -> Iterator[Case]:
    k = 0
    while True:
        kind = str(rng.choice(BYTE_KINDS))
        base = str(rng.choice(["small", "small", "residual", "mnist", "dense", "clip"]))
        seed = int(rng.integers(1 << 30))
        cmd = str(rng.choice(["compile", "compile", "check", "compile-c", "opt"]))
        yield _model_case("onnx-bytes", f"r{k}",
                          f"{base}: byte mutation '{kind}' (seed {seed})",
                          _bytes_mutation(kind, seed), base=base, cmd=cmd, isolate=True)
        k += 1


# ---------------------------------------------------------------------- data -------------
#: where a data file goes: command name -> (argv maker, outputs)
DATA_COMMANDS = ("calib", "eval", "sweep", "place", "opt", "calib-ttfs", "calib-bias")


def _data_case(name: str, desc: str, write: Callable[[Path, Assets], None], *,
               where: str = "eval", isolate: bool = False) -> Case:
    """write(path, assets) creates the data file (or directory) at path 'd.npz'."""
    def make(work: Path, assets: Assets) -> list[str]:
        write(work / "d.npz", assets)
        if where in ("eval", "place"):
            assets.out(work)
        if where == "eval":
            return _eval(data="d.npz", diag=True)
        if where == "place":
            return ["place", OUT, "--target", "loihi2", "--calib", "d.npz"]
        assets.write_model(work)
        if where == "sweep":
            assets.write_calib(work)
            return ["sweep", MODEL, "--calib", CALIB, "--data", "d.npz", "--timesteps", "8",
                    "--norm", "max", "--shift-bias", "no", "--v-init", "0"]
        if where == "opt":
            return ["opt", MODEL, "--pipeline", "fold-batchnorm,normalize{method=max}",
                    "--calib", "d.npz"]
        flags = {"calib": (), "calib-ttfs": ("--coding", "ttfs"),
                 "calib-bias": ("--calibrate-bias",)}[where]
        return _compile(MODEL, *flags, calib="d.npz")
    outputs = {"eval": EVAL_OUT, "place": (OUT,), "opt": ()}.get(where, (OUT,))
    return Case("data", f"{name}@{where}", f"{desc} [{where}]", make, outputs=outputs,
                isolate=isolate)


def _arrays(**arrs: Callable[[Assets], np.ndarray]):
    def write(p: Path, assets: Assets) -> None:
        members = {f"{k}.npy": _npy(fn(assets)) for k, fn in arrs.items()}
        p.write_bytes(_npz(members))
    return write


def _members(members: Callable[[Assets], dict[str, bytes]], compress: bool = False):
    def write(p: Path, assets: Assets) -> None:
        p.write_bytes(_npz(members(assets), compress))
    return write


def _bytes(data: bytes):
    def write(p: Path, assets: Assets) -> None:
        p.write_bytes(data)
    return write


def _xs(fn: Callable[[np.ndarray], np.ndarray]):
    return lambda a: fn(a.x().copy())


def _y_ok(a: Assets) -> np.ndarray:
    return a.y()


def _data_files() -> list[tuple[str, str, Callable[[Path, Assets], None], bool]]:
    """(name, description, writer, isolate) of every hostile data file."""
    huge = lambda n: (lambda a: {"x.npy": _npy_header("<f4", (n, 1, 12, 12)) + bytes(  # noqa
        576), "y.npy": _npy(a.y())})
    files = [
        ("x-rank3", "x (16, 1, 12)", _arrays(x=_xs(lambda x: x[..., 0]), y=_y_ok), False),
        ("x-nhwc", "x (16, 12, 12, 1)", _arrays(x=_xs(lambda x: x.transpose(0, 2, 3, 1)),
                                                y=_y_ok), False),
        ("x-flat", "x (16, 144)", _arrays(x=_xs(lambda x: x.reshape(16, -1)), y=_y_ok), False),
        ("x-1d", "x (16,)", _arrays(x=_xs(lambda x: x[:, 0, 0, 0]), y=_y_ok), False),
        ("x-scalar", "x a scalar", _arrays(x=lambda a: np.float32(1), y=_y_ok), False),
        ("x-empty", "x (0, 1, 12, 12)", _arrays(x=_xs(lambda x: x[:0]), y=lambda a: a.y()[:0]),
         False),
        ("x-big-hw", "x (16, 1, 24, 24)", _arrays(x=lambda a: np.zeros((16, 1, 24, 24),
                                                                       np.float32), y=_y_ok),
         False),
        ("y-short", "y has 15 labels for 16 samples", _arrays(x=_xs(lambda x: x),
                                                              y=lambda a: a.y()[:15]), False),
        ("y-onehot", "y one-hot (16, 10)", _arrays(x=_xs(lambda x: x),
                                                   y=lambda a: np.eye(10)[a.y()]), False),
        ("y-scalar", "y a scalar", _arrays(x=_xs(lambda x: x), y=lambda a: np.int64(3)), False),
        ("npy-huge-1e10", "x.npy header declares (1e10, 1, 12, 12), 576 data bytes",
         _members(huge(10 ** 10)), True),
        ("npy-huge-5e6", "x.npy header declares (5e6, 1, 12, 12) (2.9 GB), 576 data bytes",
         _members(huge(5 * 10 ** 6)), True),
        ("npy-huge-2^62", "x.npy header declares (2^62, 1, 12, 12)", _members(huge(2 ** 62)),
         True),
        ("npy-huge-compressed", "deflated x.npy declaring (5e6, 1, 12, 12), 576 data bytes",
         _members(huge(5 * 10 ** 6), compress=True), True),
        ("npy-neg-shape", "x.npy header declares (-16, 1, 12, 12)",
         _members(lambda a: {"x.npy": _npy_header("<f4", (-16, 1, 12, 12)) + bytes(576)}),
         False),
        ("npy-shape-expr", "x.npy header shape is an expression",
         _members(lambda a: {"x.npy": _npy_header("<f4", (), raw_shape="(16,)*100000")}),
         False),
        ("npy-fortran", "x.npy fortran_order with short data",
         _members(lambda a: {"x.npy": _npy_header("<f4", (16, 1, 12, 12), True) + bytes(10),
                             "y.npy": _npy(a.y())}), False),
        ("npy-header-64k", "x.npy with a 64 KiB header of spaces",
         _members(lambda a: {"x.npy": _npy_header("<f4", (16, 1, 12, 12))[:-1]
                             + b" " * 70000 + b"\n" + a.x().tobytes()}), False),
        ("npy-bad-descr", "x.npy descr '<f999'",
         _members(lambda a: {"x.npy": _npy_header("<f999", (16, 1, 12, 12)) + bytes(576)}),
         False),
        ("npy-truncated-header", "x.npy cut inside its header",
         _members(lambda a: {"x.npy": _npy(a.x())[:30]}), False),
        ("zip-bomb", "x.npy inflates to 4.5 GiB (ZIP64 deflate, 4 MB file)",
         lambda p, a: shutil.copyfile(a.zip_bomb(), p), True),
        ("x-int64", "x int64", _arrays(x=_xs(lambda x: (x * 100).astype(np.int64)), y=_y_ok),
         False),
        ("x-float16", "x float16", _arrays(x=_xs(lambda x: x.astype(np.float16)), y=_y_ok),
         False),
        ("x-complex", "x complex64", _arrays(x=_xs(lambda x: x.astype(np.complex64)), y=_y_ok),
         False),
        ("x-bool", "x bool", _arrays(x=_xs(lambda x: x > 0.5), y=_y_ok), False),
        ("x-str", "x unicode strings", _arrays(x=lambda a: np.full((16, 1, 12, 12), "ab"),
                                               y=_y_ok), False),
        ("x-datetime", "x datetime64", _arrays(x=lambda a: np.zeros((16, 1, 12, 12),
                                                                    "datetime64[s]"),
                                               y=_y_ok), False),
        ("x-structured", "x a structured dtype",
         _arrays(x=lambda a: np.zeros((16, 1, 12, 12), [("a", "<f4"), ("b", "<i4")]),
                 y=_y_ok), False),
        ("x-object", "x an object array (pickle)",
         _members(lambda a: {"x.npy": _npy(np.empty((16, 1, 12, 12), object)),
                             "y.npy": _npy(a.y())}), False),
        ("x-pickle-payload", "x an object array whose pickle creates ../PWNED_by_pickle",
         _members(lambda a: {"x.npy": _pickle_npy(), "y.npy": _npy(a.y())}), False),
        ("y-pickle-payload", "y an object array whose pickle creates ../PWNED_by_pickle",
         _members(lambda a: {"x.npy": _npy(a.x()), "y.npy": _pickle_npy((16,))}), False),
        ("y-float", "y float with NaN", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(
            16, np.nan)), False),
        ("y-str", "y strings", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(16, "cat")),
         False),
        ("x-nan", "x all NaN", _arrays(x=_xs(lambda x: x * np.nan), y=_y_ok), False),
        ("x-inf", "one +Inf in x", _arrays(x=_xs(lambda x: _poke(np.inf)(x)), y=_y_ok), False),
        ("x-neginf", "x all -Inf", _arrays(x=_xs(lambda x: x - np.inf), y=_y_ok), False),
        ("x-1e38", "x all 1e38", _arrays(x=_xs(lambda x: x * 0 + 1e38), y=_y_ok), False),
        ("x-f32max", "x all float32 max", _arrays(x=_xs(lambda x: np.full_like(
            x, np.finfo(np.float32).max)), y=_y_ok), False),
        ("x-1e300-f64", "x float64 1e300 (inf as float32)",
         _arrays(x=_xs(lambda x: x.astype(np.float64) * 1e300), y=_y_ok), False),
        ("x-neg-1e30", "x all -1e30", _arrays(x=_xs(lambda x: x * 0 - 1e30), y=_y_ok), False),
        ("x-zero", "x all zero", _arrays(x=_xs(lambda x: x * 0), y=_y_ok), False),
        ("y-10", "labels 10 (10 classes)", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(
            16, 10)), False),
        ("y-neg", "labels -1", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(16, -1)), False),
        ("y-2^62", "labels 2^62", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(
            16, 2 ** 62)), False),
        ("y-uint64-max", "labels uint64 max", _arrays(x=_xs(lambda x: x), y=lambda a: np.full(
            16, 2 ** 64 - 1, np.uint64)), False),
        ("no-x", "an npz with only 'X' and 'Y'", _arrays(X=_xs(lambda x: x), Y=_y_ok), False),
        ("no-y", "an npz without y", _arrays(x=_xs(lambda x: x)), False),
        ("empty-zip", "an empty zip", _members(lambda a: {}), False),
        ("text", "a text file", _bytes(b"x,y\n1,2\n"), False),
        ("empty-file", "an empty file", _bytes(b""), False),
        ("single-npy", "a single .npy, not an .npz", lambda p, a: p.write_bytes(_npy(a.x())),
         False),
        ("pickle-file", "a raw pickle file", _bytes(PICKLE_PAYLOAD), False),
        ("truncated-zip", "an npz cut in half",
         lambda p, a: p.write_bytes(_npz({"x.npy": _npy(a.x()), "y.npy": _npy(a.y())})[:3000]),
         False),
        ("bad-crc", "an npz with a flipped data byte (CRC mismatch)", _bad_crc, False),
        ("dup-member", "an npz with x.npy twice", _dup_member, False),
        ("zip-slip-name", "an npz member named ../../x.npy",
         _members(lambda a: {"../../x.npy": _npy(a.x()), "x.npy": _npy(a.x()),
                             "y.npy": _npy(a.y())}), False),
        ("control-member", "an npz member named '\\x1b[2J.npy' (and no x)",
         _members(lambda a: {"\x1b[2J\r.npy": _npy(a.x())}), False),
        ("directory", "the data path is a directory", lambda p, a: p.mkdir(), False),
        ("missing", "the data file does not exist", lambda p, a: None, False),
        ("dev-zero", "the data file is a symlink to /dev/zero",
         lambda p, a: os.symlink("/dev/zero", p), True),
        ("fifo", "the data file is a FIFO", lambda p, a: os.mkfifo(p), True),
        ("one-sample", "a single sample", _arrays(x=_xs(lambda x: x[:1]), y=lambda a: a.y()[
            :1]), False),
    ]
    return files


def _bad_crc(p: Path, a: Assets) -> None:
    b = bytearray(_npz({"x.npy": _npy(a.x()), "y.npy": _npy(a.y())}))
    b[200] ^= 0xFF
    p.write_bytes(bytes(b))


def _dup_member(p: Path, a: Assets) -> None:
    import warnings

    b = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(b, "w") as z:
            z.writestr("x.npy", _npy(a.x()))
            z.writestr("x.npy", _npy(np.zeros((3, 3), np.float32)))
            z.writestr("y.npy", _npy(a.y()))
    p.write_bytes(b.getvalue())


def _fixed_data() -> list[Case]:
    out = []
    for i, (name, desc, write, iso) in enumerate(_data_files()):
        where = ("eval", "calib")[i % 2]
        out.append(_data_case(name, desc, write, where=where, isolate=iso))
    # every command that reads data, on a few representative files
    files = {f[0]: f for f in _data_files()}
    for name in ("npy-huge-1e10", "zip-bomb", "x-nan", "x-1e38", "x-pickle-payload", "x-flat",
                 "y-10"):
        _, desc, write, iso = files[name]
        for where in ("sweep", "place", "opt", "calib-ttfs", "calib-bias"):
            if where in ("opt", "calib-ttfs", "calib-bias") and name.startswith("y-"):
                continue
            out.append(_data_case(name, desc, write, where=where, isolate=iso))
    return out


def _stream_data(rng: np.random.Generator) -> Iterator[Case]:
    files = _data_files()
    k = 0
    while True:
        name, desc, write, iso = files[rng.integers(len(files))]
        where = str(rng.choice(DATA_COMMANDS))
        case = _data_case(name, desc, write, where=where, isolate=iso)
        yield Case(case.cls, f"r{k}-{case.name}", case.description, case.make,
                   outputs=case.outputs, isolate=case.isolate)
        k += 1


# ---------------------------------------------------------------------- cli --------------
def _cli_case(name: str, desc: str, argv: Callable[[Path, Assets], list[str]] | list[str], *,
              base: str = "small", needs_out: bool = False, isolate: bool = False,
              outputs: tuple[str, ...] = (OUT,), checks: tuple = (),
              protected: tuple[str, ...] = (), needs_perms: bool = False,
              setup: Callable[[Path, Assets], None] | None = None) -> Case:
    def make(work: Path, assets: Assets) -> list[str]:
        assets.write_model(work, base)
        assets.write_calib(work, base)
        assets.write_data(work, base)
        if needs_out:
            assets.out(work)
        if setup is not None:
            setup(work, assets)
        return list(argv(work, assets) if callable(argv) else argv)
    return Case("cli", name, desc, make, isolate=isolate, outputs=outputs, checks=checks,
                protected=protected, needs_perms=needs_perms)


def _write(rel: str, data: bytes | str, mode: int | None = None):
    def setup(work: Path, assets: Assets) -> None:
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        if mode is not None:
            p.chmod(mode)
    return setup


BIG_INTS = {"2^31": 2 ** 31, "2^32": 2 ** 32, "2^40": 2 ** 40, "1e12": 10 ** 12,
            "2^63": 2 ** 63}
HOSTILE_C_NAMES = {"main_example": "main_example", "Makefile": "Makefile",
                   "CMakeLists": "CMakeLists", "footprint": "footprint", "long5000": "x" * 5000,
                   "long300": "m" * 300, "clear": "\x1b[2J", "cr": "a\rb", "nl": "a\nb",
                   "dotdot": "../x", "slash": "a/b", "space": "a b", "empty": "", "digit": "1abc",
                   "keyword": "int", "underscore": "_", "unicode": "\u00e9t\u00e9",
                   "rlo": "a\u202eb", "dash": "-rf", "reserved": "__reserved", "con": "con",
                   "weights": "m_weights"}


def _fixed_cli() -> list[Case]:
    out = []
    mk = _cli_case
    c = _compile
    for v in ("0", "-1", "", "8,,16", "1e3", " 8", "abc"):
        out.append(mk(f"timesteps={v!r}", f"--timesteps {v!r}", c(MODEL, "--timesteps", v)))
    for k, v in BIG_INTS.items():
        out.append(mk(f"timesteps={k}", f"--timesteps {v}", c(MODEL, "--timesteps", str(v)),
                      isolate=True))
        out.append(mk(f"timesteps={k}-c", f"--timesteps {v} --backend c",
                      c(MODEL, "--timesteps", str(v), "--backend", "c"), isolate=True,
                      checks=(check_c_builds,)))
    for v in ("1000000000000:1", "1:1000000000000", "4294967296:1", "0:0", "-1:5", "nan:1",
              "5", "5:4:3", "", ":", "1e3:2"):
        out.append(mk(f"fit={v!r}", f"--fit {v!r}", c(MODEL, "--fit", v),
                      isolate=len(v) > 8))
    for v in ("nan", "inf", "-inf", "1e308", "-5", "1e400"):
        out.append(mk(f"v-init={v}", f"--v-init {v}", c(MODEL, "--v-init", v)))
        out.append(mk(f"v-init={v}-fixed", f"--v-init {v} --arith fixed",
                      c(MODEL, "--v-init", v, "--arith", "fixed", "--backend", "c"),
                      checks=(check_c_builds,)))
    for v in ("inf", "nan", "0", "-1", "1e-300", "1e300"):
        out.append(mk(f"leak={v}", f"--coding ttfs --leak {v}",
                      c(MODEL, "--coding", "ttfs", "--leak", v)))
    for v in ("percentile:1e400", "percentile:nan", "percentile:-1", "percentile:101",
              "percentile:", "channel:inf", "channel:nan", "bogus", "max,max",
              "percentile:99.9:1", "clip", "percentile:1e-320", "channel:0", "\x1b[2J"):
        out.append(mk(f"norm={v!r}", f"--norm {v!r}", c(MODEL, "--norm", v)))
    out.append(mk("norm-clip-no-calib", "--norm clip without bounds or --calib",
                  c(MODEL, "--norm", "clip", calib=None)))
    out.append(mk("norm-clip-clipmodel", "--norm clip on a Clip(0,1) model without --calib",
                  c(MODEL, "--norm", "clip", calib=None), base="clip"))
    for v in ("bogus", "../../etc/passwd", "", "\x1b[2Jloihi2", "loihi2\n", "t" * 5000,
              "/dev/zero"):
        out.append(mk(f"target={_short(v)}", f"--backend place --target {_hostile(v)}",
                      c(MODEL, "--backend", "place", "--target", v),
                      isolate=v == "/dev/zero"))
        out.append(mk(f"place-target={_short(v)}", f"snnc place --target {_hostile(v)}",
                      ["place", OUT, "--target", v], needs_out=True,
                      isolate=v == "/dev/zero"))
    for name, target in _hostile_targets().items():
        out.append(mk(f"target-json-{name}", f"a target file: {name}",
                      ["place", OUT, "--target", "t.json"], needs_out=True,
                      setup=_write("t.json", target), isolate=True))
    for v in ("", "bogus", "c,c", "place", ",,,", "sim,\x1b[2J", "SIM", "c" + ",c" * 5000,
              "nir"):
        out.append(mk(f"backend={_short(v)}", f"--backend {_hostile(v)}",
                      c(MODEL, "--backend", v)))
    for flag, v in (("--seed", "-1"), ("--seed", str(2 ** 70)), ("--place-seed", "-1"),
                    ("--place-seed", str(2 ** 70))):
        extra = ["--input-coding", "poisson"] if flag == "--seed" else [
            "--backend", "place", "--target", "loihi2"]
        out.append(mk(f"{flag[2:]}={_short(v)}", f"{flag} {v}", c(MODEL, flag, v, *extra)))
    out.append(mk("seed-softmax-huge-T", "--readout softmax --timesteps 2^40",
                  c(MODEL, "--readout", "softmax", "--timesteps", str(2 ** 40)), isolate=True))
    for i, v in enumerate(("bogus", "", "{", "}", "normalize{method=percentile:1e400}",
                           "convert-to-snn{reset=bogus}", "fold-batchnorm," * 3000,
                           "normalize{method={{{{}}}}}", "\x1b[2Jfold-batchnorm",
                           "normalize{method=max", "normalize{bogus=1}",
                           "fold-batchnorm,fold-batchnorm", "convert-to-snn",
                           "normalize{method=max}{method=max}", "a" * 10000)):
        out.append(mk(f"pipeline{i}={_short(v)}", f"--pipeline {_hostile(v)}",
                      c(MODEL, "--pipeline", v)))
        out.append(mk(f"opt-pipeline{i}={_short(v)}", f"snnc opt --pipeline {_hostile(v)}",
                      ["opt", MODEL, "--pipeline", v], outputs=()))
    for key, v in HOSTILE_C_NAMES.items():
        out.append(mk(f"c-name={key}", f"--backend c --c-name {_hostile(v)}",
                      c(MODEL, "--backend", "c", "--c-name", v), checks=(check_c_builds,)))
    out.append(mk("c-name=mnist-long", "mnist with --c-name of 5000 chars",
                  c(MODEL, "--backend", "c", "--c-name", "q" * 5000), base="mnist",
                  checks=(check_c_builds,)))
    for name, toml in (("bad-toml", "timesteps = [\n"), ("timesteps-huge", "timesteps = "
                       "1000000000000\n"), ("timesteps-str", 'timesteps = "abc"\n'),
                       ("timesteps-float", "timesteps = 1.5\n"),
                       ("norm-int", "norm = 5\n"), ("backends-ints", "backends = [1, 2]\n"),
                       ("unknown-ctrl", '"\\u001b[2J" = 1\n'), ("deep", "a = " + "[" * 5000
                                                                + "]" * 5000 + "\n"),
                       ("huge-string", 'norm = "' + "x" * 1_000_000 + '"\n'),
                       ("nested", "[tool]\n[tool.snnc]\nnorm = 'max'\n"),
                       ("output", 'output = "/tmp/escaped"\n'),
                       ("fit-huge", 'fit = "1000000000000:1"\n'),
                       ("bad-utf8", b"norm = '\xff\xfe'\n"), ("nul", "norm = 'm\\u0000'\n")):
        out.append(mk(f"config-{name}", f"--config with {name}",
                      c(MODEL, "--config", "snnc-fuzz.toml"),
                      setup=_write("snnc-fuzz.toml", toml),
                      isolate=name in ("timesteps-huge", "fit-huge")))
    out.append(mk("config-implicit-pyproject", "./pyproject.toml with a bad [tool.snnc]",
                  c(MODEL), setup=_write("pyproject.toml", "[tool.snnc]\ntimesteps = -5\n"),
                  protected=("pyproject.toml",)))
    out.append(mk("config-implicit-broken", "./snnc.toml that is not TOML", c(MODEL),
                  setup=_write("snnc.toml", b"\x00\xff\x1b[2J"), protected=("snnc.toml",)))
    # eval flags
    e = ["eval", OUT, "--data", DATA, "--no-diagnostics"]
    for v in ("0", "-1", "8,,16", ",", "8,", " 8", "abc", "1e3", "", "8" + ",8" * 10000):
        out.append(mk(f"eval-timesteps={_short(v)}", f"eval --timesteps {_hostile(v)}",
                      e + ["--timesteps", v], needs_out=True, outputs=EVAL_OUT))
    for k, v in BIG_INTS.items():
        out.append(mk(f"eval-timesteps={k}", f"eval --timesteps {v}",
                      e + ["--timesteps", str(v)], needs_out=True, isolate=True,
                      outputs=EVAL_OUT))
    for v in ("0", "-1", str(2 ** 40), str(10 ** 12), "1", str(2 ** 63)):
        out.append(mk(f"eval-batch={v}", f"eval --batch {v}",
                      e + ["--timesteps", "8", "--batch", v], needs_out=True,
                      isolate=len(v) > 3, outputs=EVAL_OUT))
    for name, table in (("bogus", None), ("nan", '{"synop_pJ": NaN, "neuron_update_pJ": 1, '
                                                 '"mac_pJ": 1, "source": "x"}'),
                        ("missing", '{"synop_pJ": 1}'), ("types", '{"synop_pJ": "a", '
                                                                  '"neuron_update_pJ": [], '
                                                                  '"mac_pJ": {}, "source": 5}'),
                        ("deep", "[" * 100000 + "]" * 100000),
                        ("ctrl-source", '{"synop_pJ": 1, "neuron_update_pJ": 1, "mac_pJ": 1, '
                                        '"source": "\\u001b[2J\\r"}'),
                        ("huge", '{"synop_pJ": 1e400, "neuron_update_pJ": -1, "mac_pJ": 0, '
                                 '"source": "x"}')):
        argv = ["eval", OUT, "--data", DATA, "--timesteps", "8", "--cost-table",
                "bogus" if table is None else "cost.json"]
        out.append(mk(f"eval-cost-table-{name}", f"eval --cost-table {name}", argv,
                      needs_out=True, outputs=EVAL_OUT,
                      setup=None if table is None else _write("cost.json", table)))
    # sweep, place, opt flags
    s = ["sweep", MODEL, "--calib", CALIB, "--data", DATA, "--norm", "max", "--shift-bias",
         "no", "--v-init", "0"]
    for flags, iso in ((["--timesteps", "0"], False), (["--timesteps", str(2 ** 40)], True),
                       (["--timesteps", "8", "--fit", "1000000000000:1"], True),
                       (["--timesteps", "8", "--v-init", "nan"], False),
                       (["--timesteps", "8", "--batch", "0"], False),
                       (["--timesteps", "8", "--batch", str(10 ** 12)], True),
                       (["--timesteps", "8", "--reset", "bogus"], False),
                       (["--timesteps", "8", "--norm", "percentile:1e400"], False),
                       (["--timesteps", "8", "--shift-bias", "maybe"], False),
                       (["--timesteps", "8", "--calibrate-bias", "\x1b[2J"], False),
                       (["--timesteps", "8", "--fit", "none," * 2000 + "none"], False)):
        out.append(mk(f"sweep-{_short(' '.join(flags[2:] or flags))}",
                      f"sweep {_hostile(' '.join(flags))}", s + flags, isolate=iso,
                      outputs=()))
    for v in ("-1", str(2 ** 70), "abc"):
        out.append(mk(f"place-cmd-seed={_short(v)}", f"place --seed {v}",
                      ["place", OUT, "--target", "loihi2", "--seed", v], needs_out=True))
    out.append(mk("opt-params-bogus", "opt --params on a text file",
                  ["opt", "out/model.snnir", "--params", MODEL], needs_out=True, outputs=()))
    out.append(mk("opt-no-input", "opt without an input", ["opt"], outputs=()))
    out.append(mk("opt-list-passes", "opt --list-passes", ["opt", "--list-passes"], outputs=()))
    # argv shapes
    for name, argv in (("no-args", []), ("only-o", ["-o"]), ("help", ["--help"]),
                       ("version", ["--version"]), ("unknown-flag", [MODEL, "-o", OUT,
                                                                     "--bogus"]),
                       ("unknown-command", ["evl", OUT]),
                       ("command-ctrl", ["\x1b[2Jeval"]),
                       ("double-dash", ["--", MODEL, "-o", OUT, "--calib", CALIB]),
                       ("repeat-10k", c(MODEL) + ["--timesteps", "8"] * 10000),
                       ("eval-help", ["eval", "--help"]), ("check-no-model", ["check"]),
                       ("cmake-dir", ["--cmake-dir"]), ("compile-no-o", [MODEL])):
        out.append(mk(f"argv-{name}", f"argv {_hostile(' '.join(argv))}", argv))
    return out


def _short(v: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.:,+\-]", "?", v)
    return s if len(s) <= 24 else f"{s[:16]}..{len(v)}"


def _hostile_targets() -> dict[str, str]:
    base = {"name": "fuzz", "cores": 4, "mesh": [2, 2],
            "core": {"neurons": 1024, "synapses": 65536, "fan_in": 1024, "fan_out": 4096}}
    out = {"empty-object": "{}", "list": "[]", "null": "null", "not-json": "{bogus",
           "deep": "[" * 100000 + "]" * 100000, "nan": json.dumps(base).replace("1024", "NaN"),
           "huge-mesh": json.dumps({**base, "mesh": [10 ** 9, 10 ** 9], "cores": 10 ** 18}),
           "zero-cores": json.dumps({**base, "cores": 0, "mesh": [0, 0]}),
           "negative": json.dumps(base).replace("1024", "-1"),
           "strings": json.dumps(base).replace("1024", '"many"'),
           "1e400": json.dumps(base).replace("1024", "1e400"),
           "ctrl-name": json.dumps({**base, "name": "\x1b[2J\r\n"})}
    return out


# ---------------------------------------------------------------------- files -------------
def _files_case(name: str, desc: str, setup: Callable[[Path, Assets], list[str]], *,
                outputs: tuple[str, ...] = (OUT,), protected: tuple[str, ...] = (),
                checks: tuple = (), needs_perms: bool = False, isolate: bool = False) -> Case:
    def make(work: Path, assets: Assets) -> list[str]:
        assets.write_model(work)
        assets.write_calib(work)
        assets.write_data(work)
        return setup(work, assets)
    return Case("files", name, desc, make, outputs=outputs, protected=protected,
                checks=checks, needs_perms=needs_perms, isolate=isolate)


def _is_link(rel: str, target: str):
    def check(work: Path) -> list[str]:
        p = work / rel
        if not p.is_symlink():
            return [f"symlinked OUT '{rel}' was replaced by a "
                    f"{'folder' if p.is_dir() else 'file' if p.exists() else 'nothing'}"]
        if os.readlink(p) != target:
            return [f"symlinked OUT '{rel}' now points at {os.readlink(p)!r}"]
        return []
    return check


def _modes_follow_umask(*rels: str):
    """Files and folders snnc created are readable by group and others (umask 022)."""
    def check(work: Path) -> list[str]:
        bad = []
        for rel in rels:
            p = work / rel
            if not p.exists():
                continue
            for q in [p, *(p.rglob("*") if p.is_dir() else [])]:
                mode = stat.S_IMODE(q.lstat().st_mode)
                want = 0o055 if q.is_dir() else 0o044
                if not q.is_symlink() and mode & want != want:
                    bad.append(f"{q.relative_to(work)} {oct(mode)}")
        return [f"modes ignore the umask 022: {', '.join(bad[:4])}"
                + (f" (+{len(bad) - 4})" if len(bad) > 4 else "")] if bad else []
    return check


def _mode_is(rel: str, mode: int):
    def check(work: Path) -> list[str]:
        got = stat.S_IMODE((work / rel).lstat().st_mode)
        return [] if got == mode else [f"'{rel}' mode changed {oct(mode)} -> {oct(got)}"]
    return check


def _fixed_files() -> list[Case]:
    fc = _files_case
    c = _compile

    def link(target: str, prepare: Callable[[Path, Assets], None] | None = None,
             argv: list[str] | None = None):
        def setup(work: Path, assets: Assets) -> list[str]:
            if prepare:
                prepare(work, assets)
            os.symlink(target, work / OUT)
            return argv or c(MODEL)
        return setup

    def mkdir_real(work, assets):
        (work / "real").mkdir()

    def real_out(work, assets):
        assets.out(work, name="real")
        (work / "real" / "notes.txt").write_text("mine")

    def user_dir(work, assets):
        (work / OUT).mkdir()
        (work / OUT / "notes.txt").write_text("my notes")
        (work / OUT / "data.csv").write_text("1,2\n")
        return c(MODEL)

    def old_out_user(work, assets):
        assets.out(work)
        (work / OUT / "notes.txt").write_text("my notes")
        (work / OUT / "c").mkdir(exist_ok=True)
        (work / OUT / "c" / "mybuild.o").write_bytes(b"\x7fELF")
        return c(MODEL, "--backend", "c")

    def model_inside(work, assets):
        assets.out(work)
        shutil.move(str(work / MODEL), str(work / OUT / MODEL))
        return c("out/m.onnx")

    def model_inside_fresh(work, assets):
        (work / OUT).mkdir()
        shutil.move(str(work / MODEL), str(work / OUT / MODEL))
        return c("out/m.onnx")

    def ro(rel: str, argv: list[str], *, empty_dir: bool = True, old_out: bool = False):
        def setup(work, assets):
            p = work / rel
            if old_out:
                assets.out(work, name=rel)
            elif empty_dir:
                p.mkdir(parents=True)
            for q in [p, *p.rglob("*")]:
                if q.is_dir():
                    q.chmod(0o555)
            return argv
        return setup

    def files(**content: str):
        def setup(work, assets):
            for rel, text in content.items():
                p = work / rel.replace("__", "/")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        return setup

    def with_out(argv: list[str], then: Callable[[Path], None] | None = None):
        def setup(work, assets):
            assets.out(work)
            if then:
                then(work)
            return argv
        return setup

    def elsewhere(work: Path) -> None:
        (work / "elsewhere").mkdir(exist_ok=True)
        (work / "elsewhere" / "victim.txt").write_text("do not touch")

    def graph_link(work: Path) -> None:
        elsewhere(work)
        (work / OUT / "graph.json").unlink()
        os.symlink("../elsewhere/victim.txt", work / OUT / "graph.json")

    def c_link(work: Path) -> None:
        elsewhere(work)
        shutil.rmtree(work / OUT / "c", ignore_errors=True)
        os.symlink("../elsewhere", work / OUT / "c")

    def place_link(work: Path) -> None:
        elsewhere(work)
        shutil.rmtree(work / OUT / "place", ignore_errors=True)
        os.symlink("../elsewhere", work / OUT / "place")

    def empty_0755(work, assets):
        (work / OUT).mkdir()
        (work / OUT).chmod(0o755)
        return c(MODEL)

    victim = ("elsewhere/victim.txt",)
    out = [
        fc("o-symlink-empty-dir", "-o is a symlink to an empty folder",
           link("real", mkdir_real), checks=(_is_link(OUT, "real"),)),
        fc("o-symlink-old-out", "-o is a symlink to an earlier OUT (with a user file)",
           link("real", real_out), checks=(_is_link(OUT, "real"),),
           protected=("real/notes.txt",)),
        fc("o-symlink-dangling", "-o is a dangling symlink", link("nowhere"),
           checks=(_is_link(OUT, "nowhere"),)),
        fc("o-symlink-file", "-o is a symlink to the model file", link(MODEL),
           checks=(_is_link(OUT, MODEL),), protected=(MODEL,)),
        fc("o-symlink-outside", "-o is a symlink to a folder outside the case",
           link("../outside_dir", lambda w, a: (w.parent / "outside_dir").mkdir()),
           checks=(_is_link(OUT, "../outside_dir"),)),
        fc("o-file", "-o is an existing file",
           lambda w, a: (files(out="user data")(w, a), c(MODEL))[1], protected=(OUT,)),
        fc("o-user-folder", "-o is a folder with user files", user_dir,
           protected=("out/notes.txt", "out/data.csv")),
        fc("o-old-out-user-files", "-o is an earlier OUT holding user files", old_out_user,
           protected=("out/notes.txt", "out/c/mybuild.o"), checks=(check_c_builds,)),
        fc("o-holds-model", "the model sits in the OUT it compiles into", model_inside,
           protected=("out/m.onnx",)),
        fc("o-holds-model-fresh", "the model sits in a non-OUT folder given as -o",
           model_inside_fresh, protected=("out/m.onnx",)),
        fc("o-is-model", "-o is the model file", lambda w, a: [MODEL, "-o", MODEL, "--calib",
                                                              CALIB], protected=(MODEL,),
           outputs=()),
        fc("o-is-calib", "-o is the calibration file",
           lambda w, a: [MODEL, "-o", CALIB, "--calib", CALIB], protected=(CALIB,),
           outputs=()),
        fc("o-dot", "-o .", lambda w, a: [MODEL, "-o", ".", "--calib", CALIB],
           protected=(MODEL, CALIB, DATA), outputs=()),
        fc("o-readonly-empty", "-o is an empty read-only folder", ro(OUT, c(MODEL)),
           needs_perms=True),
        fc("o-readonly-parent", "-o inside a read-only folder", ro("ro", c(MODEL)[:1] + [
            "-o", "ro/out"] + c(MODEL)[3:]), needs_perms=True, outputs=("ro/out",)),
        fc("o-readonly-old-out", "-o is a read-only earlier OUT",
           ro(OUT, c(MODEL), old_out=True), needs_perms=True),
        fc("o-long-name", "-o with a 300-character name",
           lambda w, a: c(MODEL)[:1] + ["-o", "o" * 300] + c(MODEL)[3:], outputs=("o" * 300,)),
        fc("o-deep-path", "-o 25 levels of 200-character folders (> PATH_MAX)",
           lambda w, a: c(MODEL)[:1] + ["-o", "/".join(["d" * 200] * 25)] + c(MODEL)[3:],
           outputs=("d" * 200,)),
        fc("o-control-chars", "-o 'out\\x1b[2J\\r'",
           lambda w, a: c(MODEL)[:1] + ["-o", "out\x1b[2J\r"] + c(MODEL)[3:],
           outputs=("out\x1b[2J\r",)),
        fc("o-newline", "-o 'out\\nsnnc: error: forged'",
           lambda w, a: c(MODEL)[:1] + ["-o", "out\nsnnc: error: forged"] + c(MODEL)[3:],
           outputs=("out\nsnnc: error: forged",)),
        fc("o-empty-string", "-o ''", lambda w, a: c(MODEL)[:1] + ["-o", ""] + c(MODEL)[3:],
           protected=(MODEL, CALIB, DATA), outputs=()),
        fc("o-existing-empty-0755", "-o an existing empty 0755 folder (mode kept, files "
           "readable)", empty_0755, checks=(_mode_is(OUT, 0o755), _modes_follow_umask(OUT))),
        fc("o-fresh-modes", "a new OUT follows the umask 022",
           lambda w, a: c(MODEL, "--backend", "c"), checks=(_modes_follow_umask(OUT),)),
        fc("dump-ir-file", "--dump-ir at an existing file",
           lambda w, a: (files(ir="mine")(w, a), c(MODEL, "--dump-ir", "ir"))[1],
           protected=("ir",)),
        fc("dump-ir-inside-out", "--dump-ir inside OUT, compile fails late",
           lambda w, a: c(MODEL, "--dump-ir", "out/ir", "--backend", "place", "--target",
                          "bogus"), outputs=(OUT,)),
        fc("dump-ir-fails-late", "--dump-ir ir, compile fails in a late pass",
           lambda w, a: c(MODEL, "--dump-ir", "ir", "--norm", "clip"), outputs=(OUT, "ir")),
        fc("dump-ir-inside-old-out", "--dump-ir inside an earlier OUT, compile fails",
           with_out(c(MODEL, "--dump-ir", "out/ir", "--norm", "clip")), outputs=(OUT,)),
        fc("dump-ir-readonly", "--dump-ir in a read-only folder",
           ro("ro", c(MODEL, "--dump-ir", "ro/ir")), needs_perms=True, outputs=(OUT,)),
        fc("dump-ir-symlink", "--dump-ir is a symlink to a folder outside",
           lambda w, a: (elsewhere(w), os.symlink("elsewhere", w / "ir"),
                         c(MODEL, "--dump-ir", "ir"))[2], protected=victim,
           outputs=(OUT,)),
        fc("depfile-dir", "--depfile at a directory",
           lambda w, a: ((w / "dep").mkdir(), c(MODEL, "--depfile", "dep"))[1],
           outputs=(OUT, "dep")),
        fc("depfile-missing-dir", "--depfile in a missing folder",
           lambda w, a: c(MODEL, "--depfile", "missing/x.d"), outputs=(OUT, "missing")),
        fc("depfile-in-out", "--depfile inside OUT", lambda w, a: c(MODEL, "--depfile",
                                                                    "out/x.d")),
        fc("depfile-is-model", "--depfile is the model file",
           lambda w, a: c(MODEL, "--depfile", MODEL), protected=(MODEL,)),
        fc("depfile-model-spaces", "--depfile for a model named 'm $x#:.onnx'",
           lambda w, a: (shutil.copy(w / MODEL, w / "m $x#:.onnx"),
                         c("m $x#:.onnx", "--depfile", "x.d"))[1], outputs=(OUT, "x.d"),
           checks=(_depfile_parses,)),
        fc("json-missing-dir", "eval --json in a missing folder",
           # the folders on the way to a named output are created (as for OUT)
           with_out(_eval("--json", "missing/r.json")),
           outputs=EVAL_OUT + ("missing/r.json",)),
        fc("json-readonly", "eval --json in a read-only folder",
           lambda w, a: (ro("ro", [])(w, a), a.out(w), _eval("--json", "ro/r.json"))[2],
           needs_perms=True, outputs=EVAL_OUT),
        fc("json-is-dir", "eval --json at a directory",
           with_out(_eval("--json", "jd"), lambda w: (w / "jd").mkdir()),
           outputs=EVAL_OUT),
        fc("json-is-data", "eval --json at the data file it reads",
           with_out(_eval("--json", DATA)), protected=(DATA,), outputs=EVAL_OUT),
        fc("json-is-graph", "eval --json at OUT/graph.json",
           with_out(_eval("--json", "out/graph.json")), outputs=EVAL_OUT,
           protected=("out/graph.json",)),
        fc("json-mode", "eval --json follows the umask 022",
           with_out(_eval("--json", "r.json")), outputs=(*EVAL_OUT, "r.json"),
           checks=(_modes_follow_umask("r.json"),)),
        fc("diagnostics-readonly", "eval --diagnostics in a read-only folder",
           lambda w, a: (ro("ro", [])(w, a), a.out(w),
                         _eval("--diagnostics", "ro/d.json", diag=True))[2],
           needs_perms=True, outputs=EVAL_OUT),
        fc("plots-at-file", "eval --plots at a file",
           with_out(_eval("--plots", DATA, diag=True)), protected=(DATA,),
           outputs=EVAL_OUT),
        fc("plots-inside-out-fails", "eval --plots in OUT, eval fails on bad data",
           with_out(_eval("--plots", "out/plots", diag=True, data="missing.npz")),
           outputs=EVAL_OUT),
        fc("recompile-graph-symlink", "recompile where OUT/graph.json links outside",
           with_out(c(MODEL), graph_link), protected=victim),
        fc("recompile-c-symlink", "recompile --backend c where OUT/c links outside",
           with_out(c(MODEL, "--backend", "c"), c_link), protected=victim),
        fc("place-symlink", "snnc place where OUT/place links outside",
           with_out(["place", OUT, "--target", "loihi2"], place_link), protected=victim),
        fc("eval-readonly-out", "eval a read-only OUT",
           ro(OUT, _eval(), old_out=True), needs_perms=True, outputs=EVAL_OUT),
        fc("place-readonly-out", "place into a read-only OUT",
           ro(OUT, ["place", OUT, "--target", "loihi2"], old_out=True), needs_perms=True),
        fc("opt-o-readonly", "opt -o into a read-only folder",
           lambda w, a: ro("ro", ["opt", MODEL, "-o", "ro/x.snnir"])(w, a),
           needs_perms=True, outputs=()),
        fc("opt-o-is-model", "opt -o the model it reads",
           lambda w, a: ["opt", MODEL, "-o", MODEL], protected=(MODEL,), outputs=()),
    ]
    return out


def _depfile_parses(work: Path) -> list[str]:
    p = work / "x.d"
    if not p.is_file():
        return ["--depfile x.d was not written"]
    text = p.read_text(errors="replace")
    if "m $x#:.onnx" in text:
        return [f"depfile names the model unescaped: {text.strip()[:120]!r}"]
    return []


# ---------------------------------------------------------------------- out-dir -----------
def _out_case(name: str, desc: str, edit: Callable[[Path], None], *, cmd: str = "eval",
              variant: str = "small", isolate: bool = False) -> Case:
    """A compiled OUT, edited by edit(out_path), then read back by `cmd`."""
    def make(work: Path, assets: Assets) -> list[str]:
        o = assets.out(work, variant)
        assets.write_data(work, "mnist" if variant == "mnist" else "small")
        edit(o)
        if cmd == "eval":
            return _eval(diag=True)
        if cmd == "eval-quick":
            return _eval()
        if cmd == "place":
            return ["place", OUT, "--target", "loihi2"]
        if cmd == "opt":
            return ["opt", "out/model.snnir", "--params", "out/params.npz"]
        raise KeyError(cmd)
    outputs = {"eval": EVAL_OUT, "eval-quick": EVAL_OUT,
               "place": (OUT,), "opt": ()}[cmd]
    return Case("out-dir", f"{name}@{cmd}", f"{desc} [{cmd}]", make, outputs=outputs,
                isolate=isolate)


def _graph_edit(fn: Callable[[dict], Any]):
    def edit(o: Path) -> None:
        g = json.loads((o / "graph.json").read_text())
        r = fn(g)
        (o / "graph.json").write_text(json.dumps(g if r is None else r))
    return edit


def _graph_text(text: str | bytes | Callable[[str], str]):
    def edit(o: Path) -> None:
        p = o / "graph.json"
        if callable(text):
            p.write_text(text(p.read_text()))
        else:
            p.write_bytes(text.encode() if isinstance(text, str) else text)
    return edit


def _op(g: dict, kind: str) -> dict:
    return next(op for op in g["ops"] if op["kind"] == kind)


def _params_edit(fn: Callable[[dict[str, np.ndarray]], Any]):
    def edit(o: Path) -> None:
        with np.load(o / "params.npz") as z:
            arrs = {k: z[k] for k in z.files}
        r = fn(arrs)
        if isinstance(r, bytes):
            (o / "params.npz").write_bytes(r)
        else:
            np.savez(o / "params.npz", **(arrs if r is None else r))
    return edit


def _params_members(fn: Callable[[dict[str, np.ndarray]], dict[str, bytes]]):
    def edit(o: Path) -> None:
        with np.load(o / "params.npz") as z:
            arrs = {k: z[k] for k in z.files}
        (o / "params.npz").write_bytes(_npz(fn(arrs)))
    return edit


def _rm(rel: str):
    def edit(o: Path) -> None:
        p = o / rel
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return edit


def _replace_file(rel: str, data: bytes | Callable[[], bytes]):
    def edit(o: Path) -> None:
        (o / rel).write_bytes(data() if callable(data) else data)
    return edit


def _fixed_out_dir() -> list[Case]:
    oc = _out_case
    deep_text = "[" * 100000 + "]" * 100000

    def conv_attr(key, v):
        return _graph_edit(lambda g: _op(g, "conv")["attrs"].__setitem__(key, v))

    def set_input_shape(shape):
        return _graph_edit(lambda g: g["inputs"][0].__setitem__("shape", shape))

    def weight(name_part, fn):
        def f(arrs):
            for k in arrs:
                if name_part in k:
                    arrs[k] = fn(arrs[k])
        return _params_edit(f)

    graph_cases = [
        ("empty", _graph_text("")), ("truncated", _graph_text(lambda t: t[:len(t) // 2])),
        ("null", _graph_text("null")), ("list", _graph_text("[]")),
        ("object", _graph_text("{}")), ("string", _graph_text('"graph"')),
        ("deep-1e5", _graph_text(deep_text)),
        ("deep-in-attrs", _graph_text(lambda t: t.replace('"groups": 1',
                                                          '"groups": ' + deep_text, 1))),
        ("bad-utf8", _graph_text(b'{"format": "\xff\xfe"}')),
        ("bom", _graph_text(lambda t: "\ufeff" + t)),
        ("nan-literal", _graph_text(lambda t: t.replace('"v_init": 0.0', '"v_init": NaN'))),
        ("int-1e400", _graph_text(lambda t: t.replace('"groups": 1', '"groups": 1' + "0" * 400,
                                                      1))),
        ("format-wrong", _graph_edit(lambda g: g.__setitem__("format", "onnx"))),
        ("version-999", _graph_edit(lambda g: g.__setitem__("version", 999))),
        ("version-str", _graph_edit(lambda g: g.__setitem__("version", "1"))),
        ("no-inputs", _graph_edit(lambda g: g.pop("inputs"))),
        ("no-ops", _graph_edit(lambda g: g.pop("ops"))),
        ("no-outputs", _graph_edit(lambda g: g.pop("outputs"))),
        ("no-meta", _graph_edit(lambda g: g.pop("meta", None))),
        ("ops-dict", _graph_edit(lambda g: g.__setitem__("ops", {"a": 1}))),
        ("ops-empty", _graph_edit(lambda g: g.__setitem__("ops", []))),
        ("op-null", _graph_edit(lambda g: g["ops"].__setitem__(1, None))),
        ("op-kind-unknown", _graph_edit(lambda g: _op(g, "conv").__setitem__("kind", "evil"))),
        ("op-kind-ctrl", _graph_edit(lambda g: _op(g, "conv").__setitem__("kind",
                                                                         "\x1b[2J\r"))),
        ("op-name-ctrl", _graph_edit(lambda g: _op(g, "if").__setitem__("name",
                                                                       "\x1b[2Jrelu\r"))),
        ("op-no-attrs", _graph_edit(lambda g: _op(g, "conv").pop("attrs"))),
        ("op-attrs-list", _graph_edit(lambda g: _op(g, "conv").__setitem__("attrs", []))),
        ("strides-zero", conv_attr("strides", [0, 0])),
        ("strides-str", conv_attr("strides", "ab")),
        ("pads-huge", conv_attr("pads", [10 ** 9] * 4)),
        ("groups-zero", conv_attr("groups", 0)),
        ("dilations-neg", conv_attr("dilations", [-1, -1])),
        ("pool-kernel-zero", _graph_edit(lambda g: _op(g, "spikemaxpool")["attrs"].__setitem__(
            "kernel", [0, 0]))),
        ("input-shape-huge", set_input_shape([10 ** 10, 12, 12])),
        ("input-shape-neg", set_input_shape([-1, 12, 12])),
        ("input-shape-str", set_input_shape(["a", 12, 12])),
        ("input-shape-empty", set_input_shape([])),
        ("input-shape-mismatch", set_input_shape([1, 28, 28])),
        ("input-dtype", _graph_edit(lambda g: g["inputs"][0].__setitem__("dtype", "object"))),
        ("param-missing-ref", _graph_edit(lambda g: _op(g, "conv")["params"].__setitem__(
            "weight", "nowhere"))),
        ("output-missing", _graph_edit(lambda g: g.__setitem__("outputs", ["nowhere"]))),
        ("cycle", _graph_edit(lambda g: _op(g, "conv").__setitem__("inputs", [
            _op(g, "if")["out"]]))),
        ("self-loop", _graph_edit(lambda g: _op(g, "if").__setitem__("inputs", [
            _op(g, "if")["out"]]))),
        ("dup-op-out", _graph_edit(lambda g: _op(g, "spikemaxpool").__setitem__(
            "out", _op(g, "if")["out"]))),
        ("meta-timesteps-huge", _graph_edit(lambda g: g.setdefault("meta", {}).__setitem__(
            "timesteps", 10 ** 12))),
        ("meta-timesteps-zero", _graph_edit(lambda g: g.setdefault("meta", {}).__setitem__(
            "timesteps", 0))),
        ("meta-timesteps-str", _graph_edit(lambda g: g.setdefault("meta", {}).__setitem__(
            "timesteps", "abc"))),
        ("meta-coding-bogus", _graph_edit(lambda g: g.setdefault("meta", {}).__setitem__(
            "coding", "bogus"))),
        ("encode-steps-huge", _graph_edit(lambda g: _op(g, "encode")["attrs"].__setitem__(
            "steps", 10 ** 12))),
        ("if-reset-bogus", _graph_edit(lambda g: _op(g, "if")["attrs"].__setitem__(
            "reset", "bogus"))),
        ("if-max-spikes-neg", _graph_edit(lambda g: _op(g, "if")["attrs"].__setitem__(
            "max_spikes", -5))),
    ]
    out = []
    for i, (name, edit) in enumerate(graph_cases):
        iso = "huge" in name
        cmd = ("eval", "place", "eval-quick")[i % 3]
        out.append(oc(f"graph-{name}", f"graph.json: {name}", edit, cmd=cmd, isolate=iso))
        if name in ("deep-1e5", "truncated", "no-ops", "cycle", "strides-zero", "op-null",
                    "input-shape-huge", "meta-timesteps-huge", "if-reset-bogus"):
            for other in ("eval", "place", "eval-quick"):
                if other != cmd:
                    out.append(oc(f"graph-{name}", f"graph.json: {name}", edit, cmd=other,
                                  isolate=iso))
    huge_member = lambda arrs: {**{f"{k}.npy": _npy(v) for k, v in arrs.items()},  # noqa
                                "fc.weight.n.npy": _npy_header("<f4", (10 ** 10, 216))
                                + bytes(64)}
    params_cases = [
        ("missing", _rm("params.npz")), ("empty", _replace_file("params.npz", b"")),
        ("text", _replace_file("params.npz", b"not a zip")),
        ("empty-zip", _replace_file("params.npz", _npz({}))),
        ("truncated", lambda o: (o / "params.npz").write_bytes(
            (o / "params.npz").read_bytes()[:500])),
        ("key-missing", _params_edit(lambda a: {k: v for k, v in a.items()
                                                if "fc.weight" not in k})),
        ("wrong-shape", weight("conv1.weight", lambda v: v[:, :, :2])),
        ("transposed", weight("fc.weight", lambda v: v.T.copy())),
        ("int-dtype", weight("fc.weight", lambda v: (v * 100).astype(np.int64))),
        ("float64", weight("fc.weight", lambda v: v.astype(np.float64))),
        ("str-dtype", weight("fc.bias", lambda v: np.full(v.shape, "x"))),
        ("object", _params_members(lambda a: {**{f"{k}.npy": _npy(v) for k, v in a.items()},
                                              "fc.bias.n.npy": _pickle_npy((10,))})),
        ("scalar", weight("fc.weight", lambda v: np.float32(1))),
        ("nan", weight("fc.weight", lambda v: v * np.nan)),
        ("inf-threshold", weight("threshold", lambda v: v * np.inf)),
        ("zero-threshold", weight("threshold", lambda v: v * 0)),
        ("neg-threshold", weight("threshold", lambda v: -v)),
        ("1e38", weight("conv1.weight", lambda v: v * 1e38)),
        ("huge-header", _params_members(huge_member)),
    ]
    for i, (name, edit) in enumerate(params_cases):
        iso = name in ("huge-header",)
        cmd = ("eval", "place", "eval-quick", "opt")[i % 4]
        out.append(oc(f"params-{name}", f"params.npz: {name}", edit, cmd=cmd, isolate=iso))
    out.append(Case("out-dir", "params-zip-bomb@eval", "params.npz replaced by a zip bomb",
                    _bomb_params, outputs=EVAL_OUT, isolate=True))
    for rel in ("graph.json", "source.onnx", "manifest.json", "snn_semantics.py",
                "snn_runtime.py", "report.json", "model.snnir"):
        for cmd in ("eval", "place"):
            out.append(oc(f"missing-{rel}", f"OUT/{rel} deleted", _rm(rel), cmd=cmd))
    src_cases = [
        ("garbage", _replace_file("source.onnx", b"\x00garbage" * 10)),
        ("empty", _replace_file("source.onnx", b"")),
        ("other-model", lambda o: (o / "source.onnx").write_bytes(
            (EXAMPLES / "mnist_cnn.onnx").read_bytes())),
        ("dir", lambda o: ((o / "source.onnx").unlink(), (o / "source.onnx").mkdir())),
        ("dev-zero", lambda o: ((o / "source.onnx").unlink(),
                                os.symlink("/dev/zero", o / "source.onnx"))),
        ("ext-escape", _source_ext_escape),
        ("no-output", _source_edit(lambda m: m.graph.ClearField("output"))),
        ("nan-weights", _source_edit(lambda m: _set_values("w2", lambda a: a * np.nan)(m, None))),
        ("input-huge", _source_edit(lambda m: _set_input_dims(m, [10 ** 10, 1, 12, 12]))),
        ("flipped", lambda o: (o / "source.onnx").write_bytes(
            _bytes_mutation("flip", 3)(onnx.load(str(o / "source.onnx")), o))),
    ]
    for name, edit in src_cases:
        out.append(oc(f"source-{name}", f"OUT/source.onnx: {name}", edit, cmd="eval",
                      isolate=name in ("dev-zero", "input-huge")))
    out += [
        Case("out-dir", "out-is-file@eval", "eval OUT that is a file",
             lambda w, a: ((w / OUT).write_text("x"), a.write_data(w), _eval())[2],
             outputs=(), protected=(OUT,)),
        Case("out-dir", "out-missing@eval", "eval OUT that does not exist",
             lambda w, a: (a.write_data(w), _eval())[1], outputs=()),
        Case("out-dir", "out-is-model@eval", "eval OUT = the model file",
             lambda w, a: (a.write_model(w), a.write_data(w),
                           ["eval", MODEL, "--data", DATA])[2], outputs=(),
             protected=(MODEL,)),
        Case("out-dir", "out-empty@place", "place into an empty folder",
             lambda w, a: ((w / OUT).mkdir(), ["place", OUT, "--target", "loihi2"])[1]),
        Case("out-dir", "out-ctrl-name@eval", "eval an OUT named '\\x1b[2J\\r'",
             lambda w, a: (a.out(w, name="\x1b[2J\r"), a.write_data(w),
                           ["eval", "\x1b[2J\r", "--data", DATA, "--timesteps", "8",
                            "--no-diagnostics"])[2],
             outputs=("\x1b[2J\r/report.html", "\x1b[2J\r/manifest.json")),
        Case("out-dir", "out-mnist-data-small@eval", "eval an MNIST OUT on 12x12 data",
             lambda w, a: (a.out(w, "mnist"), a.write_data(w), _eval())[2],
             outputs=EVAL_OUT),
        Case("out-dir", "ttfs-diagnostics@eval", "eval a TTFS OUT with --plots",
             lambda w, a: (a.out(w, "ttfs"), a.write_data(w),
                           _eval("--plots", "p", diag=True))[2],
             outputs=(*EVAL_OUT, "p")),
    ]
    return out


def _bomb_params(work: Path, assets: Assets) -> list[str]:
    assets.out(work)
    assets.write_data(work)
    shutil.copyfile(assets.zip_bomb(), work / OUT / "params.npz")
    return _eval()


def _source_edit(fn: Callable[[onnx.ModelProto], Any]):
    def edit(o: Path) -> None:
        m = onnx.load(str(o / "source.onnx"))
        fn(m)
        (o / "source.onnx").write_bytes(m.SerializeToString())
    return edit


def _source_ext_escape(o: Path) -> None:
    m = onnx.load(str(o / "source.onnx"))
    _external("w2", "../../../../../../etc/hostname")(m, o)
    (o / "source.onnx").write_bytes(m.SerializeToString())


JSON_POOL: tuple[Any, ...] = (None, -1, 0, 1, 10 ** 10, 2 ** 63, -(2 ** 63) - 1, 1e308, -1e308,
                              "x", "\x1b[2J\r", "", [], {}, [0, 0], [10 ** 9] * 4, True,
                              "deep")


def _stream_out_dir(rng: np.random.Generator) -> Iterator[Case]:
    """Random edits of graph.json: one value somewhere in the tree replaced."""
    k = 0
    while True:
        seed = int(rng.integers(1 << 30))
        cmd = str(rng.choice(["eval", "eval-quick", "place"]))

        def edit(o: Path, seed=seed) -> None:
            r = np.random.default_rng(seed)
            g = json.loads((o / "graph.json").read_text())
            slots = []

            def walk(node):
                if isinstance(node, dict):
                    for key in node:
                        slots.append((node, key))
                        walk(node[key])
                elif isinstance(node, list):
                    for i in range(len(node)):
                        slots.append((node, i))
                        walk(node[i])
            walk(g)
            for _ in range(int(r.integers(1, 3))):
                parent, key = slots[r.integers(len(slots))]
                v = JSON_POOL[r.integers(len(JSON_POOL))]
                if v == "deep":
                    v = "@@DEEP@@"
                if r.random() < 0.15 and isinstance(parent, dict):
                    parent.pop(key, None)
                else:
                    parent[key] = v
            text = json.dumps(g).replace('"@@DEEP@@"', "[" * 50000 + "]" * 50000)
            (o / "graph.json").write_text(text)
        yield _out_case(f"r{k}", f"graph.json: random edit (seed {seed})", edit, cmd=cmd,
                        isolate=True)
        k += 1


# ---------------------------------------------------------------------- ir-text -----------
def _ir_case(name: str, desc: str, text: Callable[[str], str | bytes], *,
             pipeline: str = "", base: str = "small", isolate: bool = False,
             from_out: bool = False) -> Case:
    def make(work: Path, assets: Assets) -> list[str]:
        if from_out:
            o = assets.out(work)
            src = (o / "model.snnir").read_text()
            extra = ["--params", "out/params.npz"]
        else:
            src = assets.ir_text(base)
            extra = []
        t = text(src)
        (work / "in.snnir").write_bytes(t.encode("utf-8", "surrogatepass")
                                        if isinstance(t, str) else t)
        assets.write_calib(work, base)
        argv = ["opt", "in.snnir", *extra]
        if pipeline:
            argv += ["--pipeline", pipeline, "--calib", CALIB]
        return argv
    return Case("ir-text", name, desc, make, outputs=(), isolate=isolate)


def _fixed_ir_text() -> list[Case]:
    ic = _ir_case
    out = [
        ic("empty", "an empty text IR", lambda t: ""),
        ic("binary", "binary garbage", lambda t: bytes(range(256)) * 4),
        ic("bad-utf8", "invalid UTF-8", lambda t: t.encode() + b"\xff\xfe"),
        ic("header-only", "only the header line", lambda t: t.splitlines()[0] + "\n"),
        ic("version-99", "snnir 99", lambda t: t.replace("snnir 1", "snnir 99", 1)),
        ic("truncated", "cut in the middle", lambda t: t[:len(t) // 2]),
        ic("param-huge-shape", "a param declared [10000000000, 216]",
           lambda t: re.sub(r"\[10,216\]", "[10000000000,216]", t), isolate=True,
           from_out=True),
        ic("param-huge-shape-inline", "an inline param declared [10000000000, 216]",
           lambda t: re.sub(r"\[10,216\]", "[10000000000,216]", t, count=1), isolate=True),
        ic("param-neg-shape", "a param declared [-10, 216]",
           lambda t: t.replace("[10,216]", "[-10,216]", 1), from_out=True),
        ic("value-huge-shape", "the input declared [1, 100000, 100000]",
           lambda t: t.replace("input %x [1,12,12]", "input %x [1,100000,100000]"),
           isolate=True, pipeline="fold-batchnorm"),
        ic("unknown-op", "an op of kind 'evil'", lambda t: t.replace("= conv(", "= evil(", 1)),
        ic("dup-value", "two ops define %r1",
           lambda t: t.replace("%p1 = ", "%r1 = ", 1)),
        ic("use-before-def", "ops in reverse order",
           lambda t: "\n".join(_reverse_ops(t.splitlines())) + "\n"),
        ic("ctrl-names", "value names with control characters",
           lambda t: t.replace("%r1", "%\x1b[2J\rr1")),
        ic("quoted-ctrl-name", "an op name with escape sequences",
           lambda t: t.replace('name="conv1"', 'name="\\u001b[2J\\r\\u202e"', 1)),
        ic("deep-brackets", "a param value nested 100000 deep",
           lambda t: re.sub(r"= \[\[\[\[", "= " + "[" * 100000, t, count=1)),
        ic("number-1e400", "weights of 1e400", lambda t: re.sub(r"0\.\d+", "1e400", t,
                                                                count=50)),
        ic("nan-weights", "weights NaN", lambda t: re.sub(r"-?0\.\d+", "NaN", t, count=50)),
        ic("attr-strides-zero", "conv strides=[0,0]",
           lambda t: t.replace("strides=[1,1]", "strides=[0,0]", 1),
           pipeline="fold-batchnorm,normalize{method=max}"),
        ic("attr-huge-pads", "conv pads of 1e9",
           lambda t: t.replace("pads=[1,1,1,1]", "pads=[1000000000,1000000000,1000000000,"
                               "1000000000]", 1), pipeline="fold-batchnorm", isolate=True),
        ic("long-line", "a 10 MB line", lambda t: t + "# " + "x" * 10_000_000 + "\n"),
        ic("many-lines", "a million empty lines", lambda t: t + "\n" * 1_000_000),
        ic("meta-bad-json", "meta not JSON", lambda t: re.sub(r"meta \{.*\}", "meta {bogus",
                                                             t, count=1)),
        ic("meta-deep", "meta nested 100000 deep",
           lambda t: re.sub(r"meta \{.*\}", "meta " + "[" * 100000 + "]" * 100000, t,
                            count=1)),
        ic("facts-bogus", "facts declares 'spiking' on an ANN",
           lambda t: t.replace("facts []", 'facts ["spiking","normalized","no-batchnorm"]'),
           pipeline="convert-to-snn"),
        Case("ir-text", "out-text-no-params", "OUT/model.snnir (shapes only) without --params",
             lambda w, a: (a.out(w), ["opt", "out/model.snnir"])[1], outputs=()),
    ]
    return out


def _reverse_ops(lines: list[str]) -> list[str]:
    ops = [ln for ln in lines if ln.startswith("%")]
    rest = [ln for ln in lines if not ln.startswith("%")]
    head = [ln for ln in rest if not ln.startswith("output")]
    tail = [ln for ln in rest if ln.startswith("output")]
    return head + ops[::-1] + tail


def _stream_ir_text(rng: np.random.Generator) -> Iterator[Case]:
    k = 0
    pipelines = ("", "fold-batchnorm", "fold-batchnorm,normalize{method=max}",
                 "fold-batchnorm,fold-affine,relu-before-maxpool,normalize{method=max},"
                 "convert-to-snn")
    while True:
        seed = int(rng.integers(1 << 30))
        kind = str(rng.choice(["flip", "truncate", "token", "delete-line", "dup-line"]))
        pipeline = str(rng.choice(pipelines))

        def text(t: str, seed=seed, kind=kind) -> str | bytes:
            r = np.random.default_rng(seed)
            if kind in ("flip", "truncate"):
                b = bytearray(t.encode())
                if kind == "truncate":
                    return bytes(b[:int(r.integers(len(b)))])
                for _ in range(int(r.integers(1, 6))):
                    b[r.integers(len(b))] ^= 1 << int(r.integers(8))
                return bytes(b)
            lines = t.splitlines()
            i = int(r.integers(len(lines)))
            if kind == "delete-line":
                del lines[i]
            elif kind == "dup-line":
                lines.insert(i, lines[i])
            else:
                toks = re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?|\w+|\S", lines[i])
                if toks:
                    j = int(r.integers(len(toks)))
                    new = str(r.choice(["0", "-1", "10000000000", "1e400", "NaN", "[", "]",
                                        "{", '"', "%", "@", "=", ",", "", "\x1b[2J"]))
                    lines[i] = lines[i].replace(toks[j], new, 1)
            return "\n".join(lines) + "\n"
        yield _ir_case(f"r{k}", f"text IR: random {kind} (seed {seed}), pipeline "
                       f"{pipeline or 'none'}", text, pipeline=pipeline, isolate=True)
        k += 1


# ---------------------------------------------------------------------- runtime -----------
def _runtime_case(name: str, desc: str, write_data: Callable[[Path, Assets], None] | None,
                  extra: Sequence[str] = (), *, edit: Callable[[Path], None] | None = None,
                  isolate: bool = False, data: str = "d.npz") -> Case:
    def make(work: Path, assets: Assets) -> list[str]:
        o = assets.out(work)
        if write_data is not None:
            write_data(work / "d.npz", assets)
        if edit is not None:
            edit(o)
        return ["out/snn_runtime.py", OUT, "--data", data, *extra]
    return Case("runtime", name, desc, make, program="runtime", outputs=(), isolate=isolate)


def _fixed_runtime() -> list[Case]:
    rc = _runtime_case
    ok = _arrays(x=lambda a: a.x(), y=_y_ok)
    files = {f[0]: f for f in _data_files()}
    out = [rc("ok", "valid data (the baseline)", ok, ["--timesteps", "8"])]
    for name in ("no-y", "x-flat", "x-rank3", "x-nhwc", "x-empty", "y-short", "y-10", "y-neg",
                 "x-nan", "x-str", "x-object", "x-pickle-payload", "text", "directory",
                 "missing", "single-npy", "npy-huge-1e10", "zip-bomb", "y-onehot", "x-scalar"):
        _, desc, write, iso = files[name]
        out.append(rc(f"data-{name}", desc, write, ["--timesteps", "8"], isolate=iso))
    for v in ("0", "-1", "8,,16", "abc", "", str(2 ** 40), str(10 ** 12)):
        out.append(rc(f"timesteps={_short(v)}", f"--timesteps {v!r}", ok, ["--timesteps", v],
                      isolate=len(v) > 4))
    for v in ("0", "-1", str(10 ** 12)):
        out.append(rc(f"batch={v}", f"--batch {v}", ok, ["--timesteps", "8", "--batch", v],
                      isolate=len(v) > 4))
    for name, edit in (("graph-truncated", _graph_text(lambda t: t[:len(t) // 2])),
                       ("graph-deep", _graph_text("[" * 100000 + "]" * 100000)),
                       ("params-missing", _rm("params.npz")),
                       ("semantics-missing", _rm("snn_semantics.py")),
                       ("graph-null", _graph_text("null"))):
        out.append(rc(name, f"OUT edited: {name}", ok, ["--timesteps", "8"], edit=edit))
    out.append(Case("runtime", "no-args", "snn_runtime.py without arguments",
                    lambda w, a: (a.out(w), ["out/snn_runtime.py"])[1], program="runtime",
                    outputs=()))
    return out


def _stream_runtime(rng: np.random.Generator) -> Iterator[Case]:
    files = _data_files()
    k = 0
    while True:
        name, desc, write, iso = files[rng.integers(len(files))]
        yield _runtime_case(f"r{k}-{name}", desc, write, ["--timesteps", "8"], isolate=iso)
        k += 1


# ====================================================================== C build check =====
def check_c_builds(work: Path) -> list[str]:
    """Generated C in OUT/c builds with -std=c99 -pedantic -Wall -Wextra -Werror (in a
    copy, so that the case's folder is not touched), and no generated file was clobbered."""
    c = work / OUT / "c"
    if not c.is_dir():
        return ["--backend c compiled but OUT/c is missing"]
    problems = []
    mk = c / "Makefile"
    if not mk.is_file() or "(generated by snnc)" not in mk.read_text(errors="replace")[:300]:
        problems.append("OUT/c/Makefile is not snnc's Makefile (clobbered)")
    if not (c / "main_example.c").is_file() or "main(" not in (c / "main_example.c").read_text(
            errors="replace"):
        problems.append("OUT/c/main_example.c is not the example program (clobbered)")
    if shutil.which("make") is None or shutil.which("cc") is None:
        return problems
    import tempfile

    with tempfile.TemporaryDirectory(prefix="snnc-fuzz-c-") as tmp:
        dst = Path(tmp) / "c"
        shutil.copytree(c, dst, symlinks=True)
        try:
            r = subprocess.run(["make", "-s", "CFLAGS=-std=c99 -O0 -pedantic -Wall -Wextra "
                                "-Werror"], cwd=dst, capture_output=True, text=True,
                               errors="replace", timeout=120)
        except subprocess.TimeoutExpired:
            return problems + ["generated C: make did not finish in 120 s"]
        if r.returncode != 0:
            first = next((ln for ln in (r.stderr + r.stdout).splitlines()
                          if "error" in ln), (r.stderr or r.stdout).strip()[:200])
            problems.append(f"generated C does not build: {escape(first[:300])}")
    return problems


# ====================================================================== generation ========
FIXED: dict[str, Callable[[], list[Case]]] = {
    "onnx-attr": _fixed_onnx_attr, "onnx-shape": _fixed_onnx_shape,
    "onnx-init": _fixed_onnx_init, "onnx-graph": _fixed_onnx_graph,
    "onnx-names": _fixed_onnx_names, "onnx-bytes": _fixed_onnx_bytes, "data": _fixed_data,
    "cli": _fixed_cli, "files": _fixed_files, "out-dir": _fixed_out_dir,
    "ir-text": _fixed_ir_text, "runtime": _fixed_runtime}
STREAMS: dict[str, Callable[[np.random.Generator], Iterator[Case]]] = {
    "onnx-attr": _stream_onnx_attr, "onnx-shape": _stream_onnx_shape,
    "onnx-init": _stream_onnx_init, "onnx-graph": _stream_onnx_graph,
    "onnx-names": _stream_onnx_names, "onnx-bytes": _stream_onnx_bytes, "data": _stream_data,
    "out-dir": _stream_out_dir, "ir-text": _stream_ir_text, "runtime": _stream_runtime}


def catalogue() -> dict[str, list[Case]]:
    """Every class's fixed cases."""
    return {cls: FIXED[cls]() for cls in CLASSES}


def generate(n: int, seed: int = 0) -> list[Case]:
    """n cases in a deterministic order (a prefix of the list for any larger n). Each
    round takes cases of every class's catalogue (shuffled by the seed; about one per 60
    cases of the catalogue) and, every
    RANDOM_EVERY rounds, WEIGHTS[cls] seeded random cases of the classes that have them;
    once a catalogue is used up its class continues with random cases only."""
    cat = catalogue()
    queues = {}
    for i, cls in enumerate(CLASSES):
        order = np.random.default_rng([seed, 1000 + i]).permutation(len(cat[cls]))
        queues[cls] = deque(cat[cls][j] for j in order)
    streams = {cls: STREAMS[cls](np.random.default_rng([seed, i]))
               for i, cls in enumerate(CLASSES) if cls in STREAMS}
    #: larger catalogues give more cases per round, so that all run out at about once
    per_round = {cls: max(1, round(len(cat[cls]) / 60)) for cls in CLASSES}
    out: list[Case] = []
    rnd = 0
    while len(out) < n:
        for cls in CLASSES:
            for _ in range(per_round[cls]):
                if queues[cls]:
                    out.append(queues[cls].popleft())
            if cls in streams and (rnd % RANDOM_EVERY == RANDOM_EVERY - 1 or not queues[cls]):
                out.extend(next(streams[cls]) for _ in range(WEIGHTS[cls]))
        rnd += 1
    return [dataclasses.replace(c, index=i) for i, c in enumerate(out[:n])]


# ====================================================================== judging ===========
@dataclass
class Execution:
    """What one command did."""

    argv: list[str]
    code: int | None  # exit code; None when killed by a signal or timed out
    stdout: str
    stderr: str
    wall: float
    peak_rss_kb: int | None = None
    signal: int | None = None
    timed_out: bool = False
    exception: str | None = None  # in-process: a traceback that escaped main()


@dataclass
class Result:
    case: Case
    outcome: str
    problems: list[str]
    executions: list[Execution]
    wall: float = 0.0
    peak_rss_kb: int | None = None

    @property
    def last(self) -> Execution | None:
        return self.executions[-1] if self.executions else None


_ALLOWED_CTRL = {"\n", "\t"}


def controls(text: str) -> list[str]:
    """Characters that can overwrite or forge terminal output: C0/C1 controls (but newline
    and tab), DEL, line/paragraph separators, bidi and other format characters, and
    undecodable bytes (surrogate escapes)."""
    bad = []
    for ch in text:
        if ch in _ALLOWED_CTRL:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs") and ch not in bad:
            bad.append(ch)
    return bad


def escape(text: str) -> str:
    """Control characters shown escaped (for the fuzzer's own report)."""
    return "".join(ch if ch in _ALLOWED_CTRL or not controls(ch) else
                   ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


ERROR_PREFIX = {"snnc": ("snnc: error: ",),
                "runtime": ("snnc: error: ", "snn_runtime.py: error: ", "snn_runtime: error: ")}
#: stderr lines allowed on success
NOTE_RE = re.compile(r"^snnc: (note|warning): ")


def last_frame(stderr: str) -> str:
    """'file:line in func: ExceptionType: message' of the last traceback in stderr."""
    i = stderr.rfind("Traceback (most recent call last)")
    if i < 0:
        return ""
    tb = stderr[i:].splitlines()
    frames = [ln.strip() for ln in tb if ln.strip().startswith("File ")]
    exc = next((ln for ln in reversed(tb) if ln and not ln.startswith(" ")
                and not ln.startswith("Traceback")), "")
    where = ""
    if frames:
        m = re.match(r'File "([^"]+)", line (\d+), in (.+)', frames[-1])
        if m:
            where = f"{_short_path(m.group(1))}:{m.group(2)} in {m.group(3)}"
        else:
            where = frames[-1]
    snnc_frames = [f for f in frames if "/site-packages/" not in f and "/lib/python" not in f]
    if snnc_frames and snnc_frames[-1] != frames[-1]:
        m = re.match(r'File "([^"]+)", line (\d+), in (.+)', snnc_frames[-1])
        if m:
            where += f" (from {_short_path(m.group(1))}:{m.group(2)} in {m.group(3)})"
    return f"{where}: {exc}"


def _short_path(p: str) -> str:
    """A traceback path relative to the source tree (compiler/ for snnc, a shim or an
    installed copy alike), OUT/ for a compiled output, else to site-packages."""
    m = re.search(r"/snnc/(ir|passes|backends)/(.*)$", p)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    m = re.search(r"/(snnc|compiler)/([^/]+\.py)$", p)
    if m:
        return f"compiler/{m.group(2)}"
    m = re.search(r"/c\d{4,}/work/(.*)$", p)
    if m:
        return m.group(1)
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in p:
            return p.split(marker, 1)[1]
    return p


def judge_output(case: Case, ex: Execution, rss_limit_kb: int | None) -> tuple[str, list[str]]:
    """What one command did, from its exit status and output: "compiled", "clean error",
    "not compilable" or "other" (judged by the exit status alone), and the problems
    (a case is good when the first is one of OK_OUTCOMES and there are none)."""
    problems: list[str] = []
    is_check = case.program == "snnc" and ex.argv[:1] == ["check"]
    if ex.timed_out:
        return "other", [f"timeout: still running after {ex.wall:.1f} s"]
    err, out = ex.stderr, ex.stdout
    tb = ex.exception or (err if "Traceback (most recent call last)" in err else "")
    if tb:
        problems.append(f"traceback: {last_frame(tb)}")
    if ex.signal is not None:
        problems.append(f"killed by signal {ex.signal}"
                        + (" (memory limit?)" if ex.signal in (6, 9, 11) else ""))
    for stream, text in (("stdout", out), ("stderr", err)):
        bad = controls(text)
        if bad:
            problems.append(f"control characters in {stream}: "
                            f"{''.join(escape(c) for c in bad[:6])}")
    if rss_limit_kb and ex.peak_rss_kb and ex.peak_rss_kb > rss_limit_kb:
        problems.append(f"memory blow-up: peak RSS {ex.peak_rss_kb // 1024} MiB")
    if ("std::bad_alloc" in err or "MemoryError" in err) and not tb:
        problems.append("memory blow-up: allocation failed")
    lines = err.splitlines()
    if tb:
        return "other", problems
    if ex.code == 0:
        stray = [ln for ln in lines if not NOTE_RE.match(ln)]
        if stray:
            problems.append(f"stderr output on success: {escape(stray[0][:160])}")
        return "compiled", problems
    if ex.code == 2:
        prefixes = ERROR_PREFIX[case.program]
        if len(lines) != 1:
            first = next((ln for ln in lines if ln.strip()), "")
            problems.append(f"error is {len(lines)} lines, the first: {escape(first[:160])}")
        elif not lines[0].startswith(prefixes):
            problems.append(f"error line without '{prefixes[0]}': {escape(lines[0][:160])}")
        return "clean error", problems
    if ex.code == 1 and is_check:
        if err.strip():
            problems.append(f"check wrote to stderr: {escape(lines[0][:160])}")
        return "not compilable", problems
    if ex.code is not None:
        problems.append(f"exit code {ex.code}" + (f": {escape(lines[-1][:160])}" if lines
                                                  else ""))
    return "other", problems


# ---- file system ----
Snapshot = dict[str, tuple]


def snapshot(root: Path, skip_top: set[str] | frozenset[str] = frozenset()) -> Snapshot:
    """path -> (kind, mode, size, sha256) of everything under root, symlinks not followed
    (the top-level entries skip_top left out)."""
    snap: Snapshot = {}
    if not root.exists():
        return snap
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if dirpath == str(root):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            filenames = [f for f in filenames if f not in skip_top]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir", mode)
            elif stat.S_ISREG(st.st_mode):
                digest = _sha(p) if st.st_size <= 64 << 20 else f"mtime:{st.st_mtime_ns}"
                snap[rel] = ("file", mode, st.st_size, digest)
            else:
                snap[rel] = ("other", mode)
    return snap


def _sha(p: str) -> str:
    hs = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hs.update(chunk)
    except OSError:
        return "unreadable"
    return hs.hexdigest()


def diff(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str], list[str]]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return added, removed, changed


def _top(paths: list[str]) -> list[str]:
    """Paths collapsed to their shortest distinct prefixes (a new folder, not its files)."""
    out: list[str] = []
    for p in sorted(paths):
        if not any(p.startswith(q + os.sep) for q in out):
            out.append(p)
    return out


def _fmt(paths: list[str], n: int = 4) -> str:
    top = _top(paths)
    s = ", ".join(escape(p if len(p) < 80 else p[:60] + f"...<{len(p)}>") for p in top[:n])
    return s + (f" (+{len(top) - n} more)" if len(top) > n else "")


def _owned(path: str, outputs: Sequence[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs)


def judge_files(case: Case, ok: bool, before: Snapshot, after: Snapshot) -> list[str]:
    added, removed, changed = diff(before, after)
    problems = []
    if not ok:
        if added:
            problems.append(f"failed run left files: {_fmt(added)}")
        if removed:
            problems.append(f"failed run deleted files: {_fmt(removed)}")
        if changed:
            problems.append(f"failed run changed files: {_fmt(changed)}")
    else:
        # a path is owned when it is under an output, or is the parent folder of one
        # (creating the folders on the way to an output is fine)
        def owned(p: str) -> bool:
            return _owned(p, case.outputs) or any(o.startswith(p + "/") for o in case.outputs)
        foreign = [p for p in added + changed if not owned(p)]
        gone = [p for p in removed if not _owned(p, case.outputs)]
        if foreign:
            problems.append(f"wrote files it does not own: {_fmt(foreign)}")
        if gone:
            problems.append(f"deleted files it does not own: {_fmt(gone)}")
    for rel in case.protected:
        if rel in before and rel not in after:
            problems.append(f"deleted a user file: {escape(rel)}")
        elif rel in before and before[rel] != after[rel]:
            problems.append(f"changed a user file: {escape(rel)}")
    return problems


Runner = Callable[[Case, list[str], Path, Path], Execution]


def execute_case(case: Case, case_root: Path, assets: Assets, runner: Runner,
                 rss_limit_kb: int | None = None) -> Result:
    """Materialize `case` under case_root/work, run its commands with runner(case, argv,
    work, tmp) and judge outputs, files and invariants."""
    work, tmp = case_root / "work", case_root / "tmp"
    work.mkdir(parents=True)
    tmp.mkdir()
    argv = case.make(work, assets)
    commands = [list(argv)] + [list(t) for t in case.then]
    outside_before = _outside(case_root)
    run_root_before = _run_root_names(case_root.parent)
    executions: list[Execution] = []
    problems: list[str] = []
    outcome = "bad"
    t0 = time.monotonic()
    for i, cmd in enumerate(commands):
        before = snapshot(work)
        ex = runner(case, cmd, work, tmp)
        after = snapshot(work)
        executions.append(ex)
        oc, probs = judge_output(case, ex, rss_limit_kb)
        ok = oc in OK_OUTCOMES
        # files are judged by what the command claims: exit 0 may write, a failure not
        probs += judge_files(case, oc == "compiled", before, after)
        if oc == "compiled" and not ex.timed_out:
            for check in case.checks:
                try:
                    probs += check(work)
                except Exception as e:  # a broken invariant check is a fuzzer bug: show it
                    probs.append(f"fuzzer check {check.__name__} failed: {e!r}")
        if i > 0 and commands[0][:1] == ["check"]:
            check_oc = executions[0]
            if check_oc.code == 0 and oc == "clean error":
                probs.append("check says compilable, compile refuses: "
                             + escape(ex.stderr.strip()[:160]))
            elif check_oc.code == 1 and oc == "compiled":
                probs.append("check says not compilable, but it compiles")
        problems += [f"[{' '.join(_argv_label(cmd))}] {p}" if len(commands) > 1 else p
                     for p in probs]
        outcome = oc if ok and not probs else "bad"
        if outcome == "bad" or (oc != "compiled" and commands[0][:1] != ["check"]):
            break
        if oc == "not compilable" and i == 0:
            continue
    outside_after = _outside(case_root)
    added, removed, changed = diff(outside_before, outside_after)
    if added or removed or changed:
        problems.append(f"wrote outside its folder: {_fmt(added + removed + changed)}")
    new_root = _run_root_names(case_root.parent) - run_root_before
    if new_root:
        problems.append(f"wrote outside its folder: ../{_fmt(sorted(new_root))}")
    left = {k: v for k, v in snapshot(tmp).items() if k not in TMP_IGNORED}
    killed = any(e.timed_out or e.signal is not None for e in executions)
    if left and not killed:  # a killed process cannot clean up: the kill is the problem
        problems.append(f"left temporary files: {_fmt(list(left))}")
    if problems:
        outcome = "bad"
    rss = [e.peak_rss_kb for e in executions if e.peak_rss_kb]
    return Result(case, outcome, problems, executions, time.monotonic() - t0,
                  max(rss) if rss else None)


def _argv_label(cmd: list[str]) -> list[str]:
    return [escape(a if len(a) < 40 else a[:30] + f"...<{len(a)}>") for a in cmd[:3]]


#: TMPDIR files that are not snnc's: onnxruntime writes a session id file on import
TMP_IGNORED = {".ses"}
#: entries of a case folder that belong to the fuzzer, not to the run
FUZZ_ENTRIES = {"work", "tmp", "stdout", "stderr", "mpl"}


def _outside(case_root: Path) -> Snapshot:
    return snapshot(case_root, skip_top=FUZZ_ENTRIES)


def _run_root_names(run_root: Path) -> set[str]:
    try:
        return {p.name for p in run_root.iterdir() if not re.fullmatch(r"c\d{4,}|_cache", p.name)}
    except OSError:
        return set()


def cleanup(path: Path) -> None:
    """rm -rf that also removes read-only folders and FIFOs."""
    if not path.exists() and not path.is_symlink():
        return
    for dirpath, dirnames, _ in os.walk(path, followlinks=False):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o755)
                except OSError:
                    pass
    try:
        os.chmod(path, 0o755)
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)


def shell_quote(arg: str) -> str:
    """A bash word for arg: $'...' quoting when it holds control characters, and a long
    repetitive argument as "$(printf 'UNIT%.0s' {1..N})" (else shortened, marked)."""
    if len(arg) > 100:
        rep = _repetition(arg)
        if rep is None:
            return _quote(arg[:60]) + f"...<{len(arg)} chars>"
        pre, unit, k, suf = rep
        fmt = "".join("%%" if c == "%" else "\\\\" if c == "\\" else "'\\''" if c == "'"
                      else c if c.isascii() and c.isprintable() else
                      "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
                      for c in unit)
        return ((_quote(pre) if pre else "") + f"\"$(printf '{fmt}%.0s' {{1..{k}}})\""
                + (_quote(suf) if suf else ""))
    return _quote(arg)


def _repetition(arg: str) -> tuple[str, str, int, str] | None:
    """arg as prefix + unit * k + suffix with a short prefix, unit and suffix."""
    for pre in range(4):
        for ulen in range(1, 21):
            unit = arg[pre:pre + ulen]
            k = 0
            while arg.startswith(unit, pre + k * ulen):
                k += 1
            suf = arg[pre + k * ulen:]
            if k >= 10 and len(suf) <= 40:
                return arg[:pre], unit, k, suf
    return None


def _quote(arg: str) -> str:
    import shlex

    if controls(arg) or any(ord(c) > 126 for c in arg):
        body = "".join(c if c.isascii() and c.isprintable() and c not in "'\\" else
                       "\\'" if c == "'" else "\\\\" if c == "\\" else
                       "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
                       for c in arg)
        return f"$'{body}'"
    return shlex.quote(arg)
