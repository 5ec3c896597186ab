"""The C backend (backends/c): generated C99 vs the NumPy simulator.

Every network is compiled once per module (float and fixed point), built with gcc (and
clang, and gcc with sanitizers) under -std=c99 -Wall -Wextra -Werror -pedantic, run by its
main_example on a few inputs for a few steps, and compared step by step with the
simulator: fixed point must agree exactly (every output, every layer's spike count, every
step); float32 within the tolerance that different summation orders allow (see
`assert_float_close`).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import EXAMPLES, small_cnn
from onnx import helper as h
from onnx_builders import build_model, weights
from snnc.backends.c import TEMPLATE_DIR, TEMPLATES, UNSUPPORTED
from snnc.backends.c.names import Namer, c_string, comment, sanitize
from snnc.backends.sim import network, runtime
from snnc.cli import main
from snnc.driver import Options, compile_model, load
from snnc.ir import ops as O

T = 16
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
GCC, CLANG = shutil.which("gcc"), shutil.which("clang")
need_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not installed")
need_clang = pytest.mark.skipif(CLANG is None, reason="clang is not installed")


# ------------------------------------------------------------------ models -----------------
def _mlp(seed: int = 0) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Flatten", ["x"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w1", "b1"], ["a"], transB=1, name="fc1"),
             h.make_node("Clip", ["a", "lo", "hi"], ["ra"], name="relu6"),
             h.make_node("Gemm", ["ra", "w2", "b2"], ["y"], transB=1, name="fc2")]
    # Clip(0, 6) with --fit: a bounded neuron with a spike budget (IF max_spikes = T1)
    inits = {"lo": np.float32(0), "hi": np.float32(0.6),
             "w1": weights(r, (24, 64)), "b1": r.normal(0, .1, 24).astype(np.float32),
             "w2": weights(r, (5, 24)), "b2": r.normal(0, .1, 5).astype(np.float32)}
    return build_model(nodes, (1, 8, 8), inits)


def _cnn_avg(seed: int = 1) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="avg1"),
             h.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("Flatten", ["r2"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    inits = {"w1": weights(r, (4, 1, 3, 3)), "b1": r.normal(0, .1, 4).astype(np.float32),
             "w2": weights(r, (6, 4, 3, 3)), "w3": weights(r, (5, 6 * 2 * 2)),
             "b3": r.normal(0, .1, 5).astype(np.float32)}
    return build_model(nodes, (1, 8, 8), inits)


def _concat(seed: int = 2) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Conv", ["x", "wa", "ba"], ["ca"], pads=[1, 1, 1, 1], name="conv_a"),
             h.make_node("Conv", ["x", "wb"], ["cb"], pads=[0, 0, 0, 0], strides=[1, 1],
                         name="conv_b"),
             h.make_node("Pad", ["cb", "pads"], ["cbp"], name="pad_b"),
             h.make_node("Concat", ["ca", "cbp"], ["cat"], axis=1, name="cat"),
             h.make_node("Relu", ["cat"], ["rc"], name="relu_cat"),
             h.make_node("Conv", ["rc", "wc"], ["cc"], strides=[2, 2], group=2, name="conv_c"),
             h.make_node("Relu", ["cc"], ["rcc"], name="relu_c"),
             h.make_node("Concat", ["rcc", "rcc"], ["cat2"], axis=1, name="cat_spikes"),
             h.make_node("Flatten", ["cat2"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "wd"], ["y"], transB=1, name="fc")]
    inits = {"wa": weights(r, (3, 1, 3, 3)), "ba": r.normal(0, .1, 3).astype(np.float32),
             "wb": weights(r, (3, 1, 3, 3)) * 3,
             "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
             "wc": weights(r, (4, 3, 2, 2)), "wd": weights(r, (5, 8 * 4 * 4))}
    return build_model(nodes, (1, 8, 8), inits)


def _pool_pad(seed: int = 3) -> onnx.ModelProto:
    """Padded ceil-mode max-pool, a dilated strided conv, a global average pool (divisor 9,
    not a power of two)."""
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], ceil_mode=1, name="pool1"),
             h.make_node("Conv", ["p1", "w2", "b2"], ["c2"], dilations=[2, 2], pads=[2, 2, 2, 2],
                         strides=[2, 2], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             h.make_node("Flatten", ["g"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    inits = {"w1": weights(r, (4, 1, 3, 3)), "b1": r.normal(0, .1, 4).astype(np.float32),
             "w2": weights(r, (6, 4, 3, 3)), "b2": r.normal(0, .1, 6).astype(np.float32),
             "w3": weights(r, (5, 6)), "b3": r.normal(0, .1, 5).astype(np.float32)}
    return build_model(nodes, (1, 11, 11), inits)


def _cat_spikes(seed: int = 5) -> onnx.ModelProto:
    """Concat of two spike populations with different thresholds (a rescaling affine on
    spikes), then a grouped conv: in fixed point the scales multiply along this chain."""
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Conv", ["x", "wa", "ba"], ["ca"], pads=[1, 1, 1, 1], name="conv_a"),
             h.make_node("Relu", ["ca"], ["ra"], name="relu_a"),
             h.make_node("Conv", ["x", "wb"], ["cb"], pads=[2, 2, 2, 2], name="conv_b"),
             h.make_node("Relu", ["cb"], ["rb"], name="relu_b"),
             h.make_node("Concat", ["ra", "rb"], ["cat"], axis=1, name="cat"),
             h.make_node("Conv", ["cat", "wg", "bg"], ["cg"], pads=[1, 1, 1, 1], strides=[2, 2],
                         group=2, name="conv_g"),
             h.make_node("Relu", ["cg"], ["rg"], name="relu_g"),
             h.make_node("Flatten", ["rg"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "wd", "bd"], ["y"], transB=1, name="fc")]
    inits = {"wa": weights(r, (4, 3, 3, 3)), "ba": r.normal(0, .1, 4).astype(np.float32),
             "wb": weights(r, (4, 3, 5, 5)) * 2.5, "wg": weights(r, (8, 4, 3, 3)),
             "bg": r.normal(0, .1, 8).astype(np.float32), "wd": weights(r, (6, 8 * 5 * 5)),
             "bd": r.normal(0, .1, 6).astype(np.float32)}
    return build_model(nodes, (3, 10, 10), inits)


def _prescaled(seed: int = 6) -> onnx.ModelProto:
    """(x - 0.5) / 0.5 inside the model before a padded conv: affines on the input that
    stay in the graph. Their multipliers (1, 2) are exact integers, so they must not
    spend scale bits that the conv after them needs (fixed point)."""
    r = np.random.default_rng(seed)
    nodes = [h.make_node("Sub", ["x", "half"], ["xs"], name="sub"),
             h.make_node("Div", ["xs", "half"], ["xd"], name="div"),
             h.make_node("Conv", ["xd", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Flatten", ["r1"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w2"], ["y"], transB=1, name="fc")]
    inits = {"half": np.float32(0.5), "w1": weights(r, (4, 1, 3, 3)),
             "b1": r.normal(0, .1, 4).astype(np.float32), "w2": weights(r, (5, 4 * 8 * 8))}
    return build_model(nodes, (1, 8, 8), inits)


MODELS: dict[str, Any] = {
    "pool_pad": _pool_pad,
    "mlp": _mlp, "cnn_avg": _cnn_avg, "cnn_max": lambda: small_cnn(3),
    "residual": lambda: small_cnn(4, residual=True), "concat": _concat,
    "cat_spikes": _cat_spikes, "prescaled": _prescaled,
}
#: per model, options that exercise more of the spiking ops
VARIANTS: dict[str, dict[str, Any]] = {
    "pool_pad": {"fit": "10:6"},
    "mlp": {"input_coding": "poisson", "fit": "6:4", "seed": 7},
    "cnn_avg": {"v_init": 0.5, "reset": "zero"},
    "cnn_max": {},
    "residual": {"readout": "spikes", "calibrate_bias": True},
    "concat": {"shift_bias": True, "timesteps": 16},
    # Poisson input without FIT: no op needs the sat32 helper (unused static functions
    # must not be emitted: -Werror)
    "cat_spikes": {"input_coding": "poisson", "seed": 3},
    "prescaled": {"fit": "8:4"},
}
SHAPES = {"pool_pad": (1, 11, 11), "mlp": (1, 8, 8), "cnn_avg": (1, 8, 8), "concat": (1, 8, 8),
          "cnn_max": (1, 12, 12), "residual": (1, 12, 12), "cat_spikes": (3, 10, 10),
          "prescaled": (1, 8, 8)}


class Compiled:
    """One compiled network (OUT dir) and helpers to run its C and its simulator."""

    def __init__(self, out: Path, fixed: bool):
        self.out = out
        self.fixed = fixed
        self.c = out / "c"
        self.name = next(self.c.glob("*_weights.c")).name[:-len("_weights.c")]
        self.graph = load(out)

    def sources(self) -> list[str]:
        return [str(self.c / f"{self.name}.c"), str(self.c / f"{self.name}_weights.c")]

    def build(self, cc: str, flags: list[str], tag: str) -> Path:
        exe = self.c / f"example_{tag}"
        if not exe.exists():
            subprocess.run([cc, *STRICT, *flags, "-o", str(exe), str(self.c / "main_example.c"),
                            *self.sources()], check=True, capture_output=True, text=True)
        return exe

    def input_file(self, x: np.ndarray) -> Path:
        path = self.c / f"in_{len(x)}.bin"
        if self.fixed:
            xi = runtime.quantize_input(x, self.graph.meta["fixed_point"]["input_bits"])
        else:
            xi = x.astype(np.float32)
        path.write_bytes(np.ascontiguousarray(xi).tobytes())
        return path

    def run_c(self, exe: Path, x: np.ndarray, steps: int = T
              ) -> tuple[np.ndarray, np.ndarray]:
        """(outputs (T, N, K), spikes per IF layer (T, N, L)) from main_example's trace."""
        r = subprocess.run([str(exe), str(self.input_file(x)), str(steps), "1"],
                           capture_output=True, text=True, check=True)
        rows = [ln.split() for ln in r.stdout.splitlines()]
        assert len(rows) == steps * len(x), r.stdout[:500]
        i, j = rows[0].index("spikes"), rows[0].index("out")
        dtype = np.int64 if self.fixed else np.float32
        out = np.zeros((steps, len(x), len(rows[0]) - j - 1), dtype)
        spk = np.zeros((steps, len(x), j - i - 1), np.int64)
        for f in rows:
            s, t = int(f[1]), int(f[3]) - 1
            spk[t, s] = [int(v) for v in f[i + 1:j]]
            out[t, s] = [int(v) if self.fixed else float(v) for v in f[j + 1:]]
        return out, spk

    def run_sim(self, x: np.ndarray, steps: int = T) -> tuple[np.ndarray, np.ndarray]:
        names = [op.name for op in self.graph.ops if op.kind == "if"]
        spk = np.zeros((steps, len(x), len(names)), np.int64)

        def rec(name: str, t0: int, chunk: np.ndarray) -> None:
            if name in names:
                spk[t0:t0 + len(chunk), :, names.index(name)] = chunk.reshape(
                    len(chunk), len(x), -1).sum(axis=-1)

        tr = network(self.graph).simulate(x, steps, record=rec)
        return tr["output"], spk


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Any:
    """compiled(model, arith) -> Compiled, each compiled once per module."""
    cache: dict[tuple[str, str], Compiled] = {}
    root = tmp_path_factory.mktemp("cnets")

    def get(model: str, arith: str) -> Compiled:
        key = (model, arith)
        if key not in cache:
            d = root / f"{model}_{arith}"
            d.mkdir()
            if model == "mnist":
                src, calib, opts = EXAMPLES / "mnist_cnn.onnx", EXAMPLES / "mnist_calib.npz", {}
            else:
                src = d / f"{model}.onnx"
                onnx.save(MODELS[model](), src)
                calib = d / "calib.npz"
                np.savez(calib, x=_inputs(model, 64, seed=11))
                opts = VARIANTS[model]
            compile_model(src, d / "out", calib=calib,
                          options=Options(**opts, arith=arith, backends=("sim", "c")))
            cache[key] = Compiled(d / "out", arith == "fixed")
        return cache[key]

    return get


def _inputs(model: str, n: int, seed: int = 0) -> np.ndarray:
    if model == "mnist":
        with np.load(EXAMPLES / "mnist_test.npz") as z:
            return z["x"][:n]
    return np.random.default_rng(seed).uniform(0, 1, (n, *SHAPES[model])).astype(np.float32)


def assert_float_close(c_out: np.ndarray, s_out: np.ndarray, c_spk: np.ndarray,
                       s_spk: np.ndarray) -> None:
    """Float tolerance. The C code sums in its own order (event-driven column adds, a
    gather per output) where NumPy uses BLAS, so currents differ in the last bits; a
    membrane sitting exactly at threshold can then fire one step earlier or later. We
    require: >= 99% of (step, sample, layer) spike counts identical, total spike counts
    within 0.5%, outputs within 2% of the output range, and the same argmax at the last
    step for >= 90% of the samples (all of them in practice)."""
    same = (c_spk == s_spk).mean() if c_spk.size else 1.0
    assert same >= 0.99, f"only {same:.4f} of the spike counts agree"
    tot_c, tot_s = c_spk.sum(), s_spk.sum()
    assert abs(tot_c - tot_s) <= 0.005 * max(tot_s, 1), (tot_c, tot_s)
    scale = max(float(np.abs(s_out).max()), 1e-6)
    err = float(np.abs(c_out - s_out).max()) / scale
    assert err <= 0.02, f"outputs differ by {err:.4f} of their range"
    agree = (c_out[-1].argmax(-1) == s_out[-1].argmax(-1)).mean()
    assert agree >= 0.9, f"argmax agrees on {agree:.2f} of the samples"


def assert_c_matches_sim(fixed: bool, c_out: np.ndarray, s_out: np.ndarray,
                         c_spk: np.ndarray, s_spk: np.ndarray) -> None:
    """Fixed point: every spike count and output identical; float: `assert_float_close`."""
    if fixed:
        np.testing.assert_array_equal(c_spk, s_spk)
        np.testing.assert_array_equal(c_out, s_out)
    else:
        assert_float_close(c_out, s_out, c_spk, s_spk)


# ------------------------------------------------------------------ registry ---------------
def test_every_op_kind_has_a_template_or_a_reason():
    for kind in O.OPS:
        assert (kind in TEMPLATES) != (kind in UNSUPPORTED), (
            f"op kind '{kind}' needs a C template (backends/c/templates) or an entry in "
            "backends.c.UNSUPPORTED with a reason")
    for kind, file in TEMPLATES.items():
        assert (TEMPLATE_DIR / file).is_file(), f"missing template {file} for '{kind}'"
    spiking_reachable = {k for k, c in O.OPS.items() if c.spiking} | {
        "conv", "dense", "affine", "avgpool", "add", "concat", "flatten", "reshape", "pad"}
    ttfs = {k for k in O.OPS if k.startswith("ttfs")}  # refused: README, C backend
    assert spiking_reachable - {"spikesoftmax"} - ttfs <= set(TEMPLATES)
    assert all(len(r) > 20 for r in UNSUPPORTED.values())


# ------------------------------------------------------------------ C vs simulator ---------
@need_gcc
@pytest.mark.parametrize("model", sorted(MODELS))
def test_fixed_point_c_equals_simulator_spike_for_spike(compiled, model):
    net = compiled(model, "fixed")
    x = _inputs(model, 6, seed=3)
    c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
    s_out, s_spk = net.run_sim(x)
    assert s_spk.sum() > 0, "the test network never spikes: the comparison would be empty"
    np.testing.assert_array_equal(c_spk, s_spk)
    np.testing.assert_array_equal(c_out, s_out)


@need_gcc
@pytest.mark.parametrize("model", sorted(MODELS))
def test_float_c_matches_simulator_within_tolerance(compiled, model):
    net = compiled(model, "float")
    x = _inputs(model, 6, seed=3)
    c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
    s_out, s_spk = net.run_sim(x)
    assert_float_close(c_out, s_out, c_spk, s_spk)


@need_gcc
def test_mnist_fixed_c_equals_simulator_with_sanitizers(compiled):
    net = compiled("mnist", "fixed")
    x = _inputs("mnist", 20)
    exe = net.build(GCC, ["-O1", "-g", "-fsanitize=address,undefined",
                          "-fno-sanitize-recover=all"], "asan")
    c_out, c_spk = net.run_c(exe, x)
    s_out, s_spk = net.run_sim(x)
    np.testing.assert_array_equal(c_spk, s_spk)
    np.testing.assert_array_equal(c_out, s_out)


@need_gcc
def test_mnist_float_c_matches_simulator(compiled):
    net = compiled("mnist", "float")
    x = _inputs("mnist", 30)
    c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
    s_out, s_spk = net.run_sim(x)
    assert_float_close(c_out, s_out, c_spk, s_spk)


@need_gcc
@pytest.mark.parametrize("model", ["mlp", "cnn_avg"])
def test_sanitizers_on_tiny_models(compiled, model):
    net = compiled(model, "fixed")
    x = _inputs(model, 3, seed=5)
    exe = net.build(GCC, ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
                    "asan")
    np.testing.assert_array_equal(net.run_c(exe, x)[0], net.run_sim(x)[0])


@need_clang
@pytest.mark.parametrize("arith", ["fixed", "float"])
@pytest.mark.parametrize("model", ["mnist", "residual", "concat"])
def test_clang_builds_and_agrees(compiled, model, arith):
    net = compiled(model, arith)
    x = _inputs(model, 4, seed=2)
    c_out, c_spk = net.run_c(net.build(CLANG, ["-O2"], "clang"), x)
    s_out, s_spk = net.run_sim(x)
    assert_c_matches_sim(arith == "fixed", c_out, s_out, c_spk, s_spk)


# ------------------------------------------------------------------ linking, instances ------
@need_gcc
def test_two_models_and_two_instances_in_one_program(compiled, tmp_path):
    a, b = compiled("mnist", "fixed"), compiled("cnn_max", "float")
    assert a.name != b.name
    prog = tmp_path / "both.c"
    prog.write_text(f"""
#include <stdio.h>
#include <string.h>
#include "{a.name}.h"
#include "{b.name}.h"
static {a.name}_ctx a1, a2;
static {b.name}_ctx b1;
static {a.name}_input_t xa[2][{a.name}_INPUT_SIZE];
static {b.name}_input_t xb[{b.name}_INPUT_SIZE];
int main(void) {{
    FILE *f = fopen("{a.input_file(_inputs('mnist', 2))}", "rb");
    FILE *g = fopen("{b.input_file(_inputs('cnn_max', 1, seed=9))}", "rb");
    {a.name}_output_t y1[{a.name}_OUTPUT_SIZE], y2[{a.name}_OUTPUT_SIZE];
    {b.name}_output_t z[{b.name}_OUTPUT_SIZE];
    unsigned t; int i;
    if (!f || !g || fread(xa, sizeof xa[0][0], 2 * {a.name}_INPUT_SIZE, f) !=
        2 * {a.name}_INPUT_SIZE || fread(xb, sizeof xb[0], {b.name}_INPUT_SIZE, g) !=
        {b.name}_INPUT_SIZE) return 3;
    {a.name}_init(&a1); {a.name}_init(&a2); {b.name}_init(&b1);
    {a.name}_reset(&a1, xa[0], 0); {a.name}_reset(&a2, xa[1], 1);
    {b.name}_reset(&b1, xb, 0);
    for (t = 0; t < {T}; ++t) {{  /* interleaved: no shared state */
        {a.name}_step(&a1); {b.name}_step(&b1); {a.name}_step(&a2);
    }}
    {a.name}_run(&a2, xa[0], 0, {T}, y1);  /* a fresh run on a used instance */
    memcpy(y2, {a.name}_output(&a1), sizeof y2);
    memcpy(z, {b.name}_output(&b1), sizeof z);
    for (i = 0; i < {a.name}_OUTPUT_SIZE; ++i) printf("%lld ", (long long)y2[i]);
    printf("\\n");
    for (i = 0; i < {a.name}_OUTPUT_SIZE; ++i) printf("%lld ", (long long)y1[i]);
    printf("\\n");
    for (i = 0; i < {b.name}_OUTPUT_SIZE; ++i) printf("%.9g ", (double)z[i]);
    printf("\\n%lu %lu\\n", (unsigned long)sizeof a1, (unsigned long)sizeof b1);
    return 0;
}}
""")
    exe = tmp_path / "both"
    subprocess.run([GCC, *STRICT, "-O2", f"-I{a.c}", f"-I{b.c}", "-o", str(exe), str(prog),
                    *a.sources(), *b.sources()], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    ya = a.run_sim(_inputs("mnist", 2))[0][-1]
    assert [int(v) for v in lines[0].split()] == ya[0].tolist()
    assert [int(v) for v in lines[1].split()] == ya[0].tolist()
    zb = b.run_sim(_inputs("cnn_max", 1, seed=9))[0][-1, 0]
    np.testing.assert_allclose([float(v) for v in lines[2].split()], zb, rtol=0.02,
                               atol=0.02 * float(np.abs(zb).max()))
    # the planned RAM figure is the real sizeof of the context struct
    import json

    sizes = [json.loads((n.c / "footprint.json").read_text())["total"]["ram_ctx_bytes"]
             for n in (a, b)]
    assert [int(v) for v in lines[3].split()] == sizes


@need_gcc
def test_fixed_poisson_without_fit_builds_strictly(tmp_path):
    """A network whose every op gets spikes (Poisson input, no average pool, no FIT
    current) uses no saturating helper, so none may be emitted (-Werror=unused-function)."""
    src = tmp_path / "m.onnx"
    onnx.save(small_cnn(3), src)
    np.savez(tmp_path / "c.npz", x=_inputs("cnn_max", 32, seed=4))
    compile_model(src, tmp_path / "out", calib=tmp_path / "c.npz",
                  options=Options(arith="fixed", input_coding="poisson", seed=2,
                                  backends=("sim", "c")))
    net = Compiled(tmp_path / "out", True)
    x = _inputs("cnn_max", 3, seed=8)
    c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
    s_out, s_spk = net.run_sim(x)
    np.testing.assert_array_equal(c_out, s_out.reshape(c_out.shape))
    np.testing.assert_array_equal(c_spk, s_spk)


# ------------------------------------------------------------------ memory plan ------------
@pytest.mark.parametrize("model", sorted(MODELS) + ["mnist"])
def test_step_buffers_never_overlap_while_live(compiled, model):
    """Every pair of step buffers whose live ranges overlap (in op order) occupies
    disjoint memory of its arena; the arena is as small as the peak it must hold, and
    what must persist (state, readout, per-input constants, padded values) is not in it."""
    from snnc.backends.c.plan import STEP_OWNER, plan_graph

    net = compiled(model, "fixed")
    plan = plan_graph(net.graph, net.name)
    bufs = plan.step_buffers
    assert bufs
    for i, a in enumerate(bufs):
        assert a.offset >= 0 and a.arena
        for b in bufs[i + 1:]:
            if a.arena == b.arena and a.first <= b.last and b.first <= a.last:
                assert (a.offset + a.size <= b.offset or b.offset + b.size <= a.offset), (
                    a, b)
    arenas = {m.ident: m.size for m in plan.members if m.owner == STEP_OWNER}
    for arena, size in arenas.items():
        mine = [b for b in bufs if b.arena == arena]
        assert size == max(b.offset + b.size for b in mine)
        peak = max(sum(b.size for b in mine if b.first <= t <= b.last)
                   for t in range(len(plan.ops)))
        assert peak <= size <= sum(b.size for b in mine)
    kinds = {p["idx"]: p["kind"] for p in plan.ops}
    assert all(kinds[b.first] not in ("accumulate", "pad") for b in bufs)
    assert not any(p["const"] and isinstance(p["y"]["ptr"], type(bufs[0])) for p in plan.ops)


@need_gcc
@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")
@pytest.mark.parametrize("arith", ["fixed", "float"])
@pytest.mark.parametrize("model", sorted(MODELS) + ["mnist"])
def test_network_needs_nothing_but_string_h(compiled, model, arith, tmp_path):
    """No heap and no libc beyond <string.h>: the only symbols the network's objects
    leave undefined (at -O0 and -O2) are memset and memcpy, and memmove where the compiler
    turns a copy loop into one."""
    net = compiled(model, arith)
    for opt in ("-O0", "-O2"):
        undefined: set[str] = set()
        defined: set[str] = set()
        for src in net.sources():
            obj = tmp_path / (Path(src).name + opt + ".o")
            subprocess.run([GCC, *STRICT, opt, "-c", "-o", str(obj), src], check=True)
            for flag, into in (("-u", undefined), ("--defined-only", defined)):
                r = subprocess.run(["nm", flag, str(obj)], capture_output=True, text=True,
                                   check=True)
                into |= {ln.split()[-1] for ln in r.stdout.splitlines() if ln.strip()}
        assert undefined - defined <= {"memset", "memcpy", "memmove"}, (
            opt, undefined - defined)


def test_step_buffers_are_reused_across_layers(compiled):
    """On the MNIST CNN, the spike buffers of the second block reuse the first block's."""
    from snnc.backends.c.plan import plan_graph

    net = compiled("mnist", "fixed")
    plan = plan_graph(net.graph, net.name)
    spikes = [b for b in plan.step_buffers if b.ctype == "uint8_t"]
    arena = next(m.size for m in plan.members if m.ident == spikes[0].arena)
    assert arena < sum(b.size for b in spikes)


# ------------------------------------------------------------------ names ------------------
def test_sanitize_and_escape_helpers():
    assert sanitize("int") == "int_" and sanitize("3x") == "n3x" and sanitize("") == "x"
    assert sanitize("a*/b\n\"c\"") == "a_b_c"
    n = Namer()
    assert n("a b") == "a_b" and n("a-b") == "a_b_2"
    assert "*/" not in comment("x */ y /* z ??/") and "\n" not in comment("a\nb")
    assert c_string('q"\\?\n\u00e9') == '"q\\"\\\\\\?\\012\\303\\251"'


@need_gcc
def test_hostile_onnx_names_compile_cleanly(tmp_path):
    r = np.random.default_rng(5)
    names = ["conv */ 1", 'relu "quoted"\nnext', "int", "a b", "a-b", "for", "\u00fcber\u2603"]
    nodes = [h.make_node("Conv", ["x", "w"], ["t */ 0"], pads=[1, 1, 1, 1], name=names[0]),
             h.make_node("Relu", ["t */ 0"], ["while"], name=names[1]),
             h.make_node("Conv", ["while", "w2"], ["a b"], name=names[2]),
             h.make_node("Relu", ["a b"], ["a-b"], name=names[3]),
             h.make_node("Flatten", ["a-b"], ["??/"], name=names[4]),
             h.make_node("Gemm", ["??/", "w3"], ["\u00fcber"], transB=1, name=names[5]),
             h.make_node("Identity", ["\u00fcber"], ["out put"], name=names[6])]
    model = build_model(nodes, (1, 6, 6), {"w": weights(r, (3, 1, 3, 3)),
                                           "w2": weights(r, (3, 3, 3, 3)),
                                           "w3": weights(r, (4, 3 * 4 * 4))})
    onnx.save(model, tmp_path / "we ird*name.onnx")
    np.savez(tmp_path / "c.npz", x=r.uniform(0, 1, (16, 1, 6, 6)).astype(np.float32))
    for arith in ("fixed", "float"):
        out = tmp_path / arith
        assert main([str(tmp_path / "we ird*name.onnx"), "-o", str(out), "--calib",
                     str(tmp_path / "c.npz"), "--backend", "c", "--arith", arith]) == 0
        net = Compiled(out, arith == "fixed")
        assert net.name == "we_ird_name"
        x = r.uniform(0, 1, (2, 1, 6, 6)).astype(np.float32)
        c_out, c_spk = net.run_c(net.build(GCC, ["-O0"], "gcc"), x)
        s_out, s_spk = net.run_sim(x)
        assert_c_matches_sim(arith == "fixed", c_out, s_out, c_spk, s_spk)
        text = (out / "c" / f"{net.name}.c").read_text()
        assert "*/ 1" not in text and "\u00fc" not in text


# ------------------------------------------------------------------ CLI ---------------------
def test_cli_backend_c_writes_sources_and_footprint(tmp_path, capsys):
    src = EXAMPLES / "mnist_cnn.onnx"
    calib = EXAMPLES / "mnist_calib.npz"
    out = tmp_path / "o"
    assert main([str(src), "-o", str(out), "--calib", str(calib), "--backend", "c",
                 "--arith", "fixed", "--c-name", "net1", "--timesteps", "8"]) == 0
    text = capsys.readouterr().out
    assert "C footprint of net1" in text and "total" in text
    files = sorted(p.name for p in (out / "c").iterdir())
    assert files == ["CMakeLists.txt", "Makefile", "footprint.json", "footprint.md",
                     "main_example.c", "net1.c", "net1.h", "net1_weights.c"]
    assert (out / "graph.json").is_file() and (out / "snn_runtime.py").is_file()
    import json

    rep = json.loads((out / "report.json").read_text())
    assert {r["kind"] for r in rep["quantization"]} == {"conv", "dense", "if"}
    assert rep["c_footprint"]["flash_weights_bytes"] > 20000
    fp = json.loads((out / "c" / "footprint.json").read_text())
    # the struct: t, sample, spikes[2 layers], then the planned members
    assert fp["total"]["ram_ctx_bytes"] == sum(r["ram_bytes"] for r in fp["layers"]) + 16
    assert fp["quantization"] == rep["quantization"]
    # same input + flags: byte-identical files
    out2 = tmp_path / "o2"
    assert main([str(src), "-o", str(out2), "--calib", str(calib), "--backend", "sim,c",
                 "--arith", "fixed", "--c-name", "net1", "--timesteps", "8"]) == 0
    for p in sorted((out / "c").iterdir()):
        assert p.read_bytes() == (out2 / "c" / p.name).read_bytes(), p.name


def test_cli_says_when_the_c_name_is_changed(tmp_path, capsys):
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--backend", "c", "--c-name", "9bad-name",
                 "--timesteps", "4"]) == 0
    assert "the C code uses 'n9bad_name'" in capsys.readouterr().out
    assert (tmp_path / "o" / "c" / "n9bad_name.h").is_file()


@need_gcc
@pytest.mark.parametrize("name", ["main_example", "Makefile", "clean", "x" * 5000])
def test_c_names_never_clobber_generated_files_and_always_build(tmp_path, name):
    """A prefix equal to a generated file's stem or a reserved build target gets '_net';
    a very long one is cut with a hash; the generated folder then builds with make under
    -pedantic -Werror and runs."""
    out = tmp_path / "o"
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(out), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--backend", "c", "--c-name", name,
                 "--timesteps", "2"]) == 0
    c = out / "c"
    stems = [p.name[:-len("_weights.c")] for p in c.glob("*_weights.c")]
    assert len(stems) == 1 and len(stems[0]) <= 24
    prefix = stems[0]
    assert prefix.lower() not in ("main_example", "makefile", "clean")
    assert {"main_example.c", "Makefile", "CMakeLists.txt", f"{prefix}.c",
            f"{prefix}.h"} <= {p.name for p in c.iterdir()}
    r = subprocess.run(["make", "-C", str(c), f"CFLAGS={' '.join(STRICT)}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Makefile" in {p.name for p in c.iterdir()}
    assert (c / f"{prefix}_example").is_file()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc is not installed (Debian: gcc-arm-none-eabi)")
def test_cortex_m4_footprint(compiled):
    import json

    fp = json.loads((compiled("mnist", "fixed").c / "footprint.json").read_text())
    m4 = fp["total"]["cortex_m4"]
    assert "-mcpu=cortex-m4" in m4["flags"] and 0 < m4["code_bytes"] < 20000
    # measured by arm-none-eabi-size: exactly the planned const arrays
    assert m4["weights_measured"]
    assert m4["weights_bytes"] == fp["total"]["flash_weights_bytes"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc is not installed (Debian: gcc-arm-none-eabi)")
def test_large_weights_are_not_cross_compiled_to_be_measured(compiled, monkeypatch):
    import snnc.backends.c as cb

    net = compiled("mnist", "fixed")
    files = {p.name: p.read_bytes() for p in net.c.iterdir()
             if p.suffix in (".c", ".h")}
    monkeypatch.setattr(cb, "ARM_MEASURE_WEIGHTS_MAX", 1000)
    m4 = cb.arm_sizes(net.name, files, weights_bytes=12345)
    assert not m4["weights_measured"] and m4["weights_bytes"] == 12345
    assert m4["code_bytes"] > 0


def test_cli_errors_write_nothing(tmp_path, capsys):
    src, calib = EXAMPLES / "mnist_cnn.onnx", EXAMPLES / "mnist_calib.npz"
    out = tmp_path / "o"
    # no fixed-point spiking softmax
    assert main([str(src), "-o", str(out), "--calib", str(calib), "--arith", "fixed",
                 "--readout", "softmax"]) == 2
    err = capsys.readouterr().err
    assert "spiking softmax" in err and "--arith float" in err and not out.exists()
    # no C spiking softmax either
    assert main([str(src), "-o", str(out), "--calib", str(calib), "--backend", "c",
                 "--readout", "softmax"]) == 2
    assert "spikesoftmax" in capsys.readouterr().err and not out.exists()
    assert main([str(src), "-o", str(out), "--calib", str(calib), "--backend", "c,verilog"]) == 2
    assert "unknown backend 'verilog'" in capsys.readouterr().err and not out.exists()
    assert main([str(src), "-o", str(out), "--arith", "double"]) == 2
    assert not out.exists()


def test_fixed_point_refuses_avgpool_with_a_varying_divisor(tmp_path, capsys):
    r = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             h.make_node("Relu", ["c"], ["rc"], name="relu"),
             h.make_node("AveragePool", ["rc"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         name="pool_edge"),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w2"], ["y"], transB=1, name="fc")]
    onnx.save(build_model(nodes, (1, 6, 6), {"w": weights(r, (2, 1, 3, 3)),
                                             "w2": weights(r, (3, 2 * 4 * 4))}),
              tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=r.uniform(0, 1, (8, 1, 6, 6)).astype(np.float32))
    args = [str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"), "--calib",
            str(tmp_path / "c.npz"), "--backend", "c"]
    assert main([*args, "--arith", "fixed"]) == 2
    err = capsys.readouterr().err
    assert "node 'pool_edge'" in err and "--arith float" in err
    assert not (tmp_path / "o").exists()
    assert main(args) == 0  # float handles it (per-position divisors)
    if GCC is not None:
        net = Compiled(tmp_path / "o", False)
        x = r.uniform(0, 1, (3, 1, 6, 6)).astype(np.float32)
        c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
        s_out, s_spk = net.run_sim(x)
        assert_float_close(c_out, s_out, c_spk, s_spk)
        assert "_n" in (tmp_path / "o" / "c" / "m_weights.c").read_text()  # divisor table


# ------------------------------------------------------------------ build files -------------
@need_gcc
def test_makefile_builds_the_example(compiled, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    net = compiled("cnn_avg", "fixed")
    d = tmp_path / "src"
    shutil.copytree(net.c, d)
    r = subprocess.run(["make", "-s", "-C", str(d), "CC=gcc",
                        "CFLAGS=-std=c99 -O2 -Wall -Wextra -Werror -pedantic"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    x = _inputs("cnn_avg", 2, seed=1)
    out, _ = net.run_c(d / f"{net.name}_example", x)
    np.testing.assert_array_equal(out, net.run_sim(x)[0])


@need_gcc
@pytest.mark.parametrize("arith", ["fixed", "float"])
def test_per_channel_thresholds_and_initial_membranes(tmp_path, arith):
    """Thresholds of shape (C, 1, 1) / (O,) and v_init: the 'channel' broadcast path."""
    import dataclasses

    from snnc.backends.c import CBackend
    from snnc.ir.serialize import graph_files
    from snnc.passes import PassContext
    from snnc.passes.quantize import Quantize
    from snnc.report import format_table

    onnx.save(small_cnn(6, residual=True), tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=_inputs("residual", 32, seed=4))
    g = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz",
                      options=Options(v_init=0.25, readout="spikes")).graph
    r = np.random.default_rng(0)
    ops = []
    for op in g.ops:
        if isinstance(op, O.IFNeuron):
            shape = g.shape(op.out)
            th = r.uniform(0.6, 1.4, (shape[0],) + (1,) * (len(shape) - 1))
            name = f"{op.name}.th.channel"
            g.params[name] = th.astype(np.float32)
            op = dataclasses.replace(op, threshold=name)
        ops.append(op)
    g = g.rebuild(ops)
    if arith == "fixed":
        g = Quantize().run(g, PassContext())
        g.facts.add("fixed-point")
    backend = CBackend("chan", version="test", format_table=format_table)
    files = {**graph_files(g), **backend.emit(g)}
    out = tmp_path / "out"
    for k, v in files.items():
        (out / k).parent.mkdir(parents=True, exist_ok=True)
        (out / k).write_bytes(v)
    assert "chan_th" in (out / "c" / "chan_weights.c").read_text()  # per-channel arrays
    net = Compiled(out, arith == "fixed")
    x = _inputs("residual", 4, seed=8)
    c_out, c_spk = net.run_c(net.build(GCC, ["-O2"], "gcc"), x)
    s_out, s_spk = net.run_sim(x)
    assert s_spk.sum() > 0
    assert_c_matches_sim(arith == "fixed", c_out, s_out, c_spk, s_spk)


@need_gcc
def test_cmake_builds_the_example(compiled, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    net = compiled("mlp", "fixed")
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(net.c), "-B", str(build), "-DCMAKE_C_COMPILER=gcc"],
                ["cmake", "--build", str(build)]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    x = _inputs("mlp", 2, seed=1)
    out, _ = net.run_c(build / f"{net.name}_example", x)
    np.testing.assert_array_equal(out, net.run_sim(x)[0])


def test_unknown_attributes_are_refused_not_ignored():
    """Every attribute of every op kind with a C template is implemented (or it is listed
    in HANDLED_ATTRS and the C backend refuses a non-default value)."""
    import dataclasses

    from snnc.ir.semantics import HANDLED_ATTRS, SIMULATOR_ONLY_ATTRS, check_attrs

    assert set(HANDLED_ATTRS) == set(TEMPLATES)
    for kind in TEMPLATES:
        declared = set(O.OPS[kind].fields_by_role("attr"))
        refused = set(SIMULATOR_ONLY_ATTRS.get(kind, {}))
        assert not refused & HANDLED_ATTRS[kind]
        assert declared == set(HANDLED_ATTRS[kind]) | refused, (
            f"op kind '{kind}' has attributes {sorted(declared - HANDLED_ATTRS[kind])} the "
            "C backend and fixed point do not implement: implement them (runtime integer "
            "mode, C template) and add them to HANDLED_ATTRS")
    op = O.Accumulate(name="acc", out="y", x="x")
    check_attrs(op, "the C backend", "hint")  # nothing set: fine
    fake = dataclasses.make_dataclass("Fake", [("extra", int, dataclasses.field(
        default=0, metadata={"role": "attr"}))], bases=(O.Accumulate,), frozen=True)
    with pytest.raises(Exception, match="extra=3"):
        check_attrs(fake(name="acc", out="y", x="x", extra=3), "the C backend", "hint")
    signed = O.IFNeuron(name="n", out="y", x="x", threshold="t", signed=True)
    with pytest.raises(Exception, match="signed=True: signed neurons"):
        check_attrs(signed, "the C backend", "hint")


@need_gcc
@pytest.mark.parametrize("arith", ["fixed", "float"])
def test_export_input_and_verify_c_from_the_cli(compiled, arith, tmp_path, capsys):
    """`snnc export-input` writes what the example reads (the bytes this module's own
    harness writes), and `snnc verify-c` builds the example and agrees with the simulator;
    a network whose simulator weights were changed behind the C's back disagrees (exit 1)."""
    from snnc.cli import main

    c = compiled("mnist", arith)
    out = c.c.parent
    x = _inputs("mnist", 6)
    data = tmp_path / "d.npz"
    np.savez(data, x=x)
    assert main(["export-input", str(out), "--data", str(data), "-o",
                 str(tmp_path / "in.bin"), "--first", "2", "--count", "3"]) == 0
    assert (tmp_path / "in.bin").read_bytes() == c.input_file(x[2:5]).read_bytes()
    assert main(["verify-c", str(out), "--data", str(data), "--timesteps", "8",
                 "--json", str(tmp_path / "v.json")]) == 0
    rep = json.loads((tmp_path / "v.json").read_text())
    assert rep["ok"] and rep["samples"] == 6 and rep["class_agreement"] == 1.0
    if arith == "fixed":
        assert rep["spike_counts_identical"] == 1.0 and rep["max_output_diff"] == 0
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    with np.load(broken / "params.npz") as z:
        params = {k: z[k] for k in z.files}
    w = next(k for k in sorted(params) if params[k].ndim == 4)  # the first conv's weights
    params[w] = params[w] * 2
    np.savez(broken / "params.npz", **params)
    capsys.readouterr()
    assert main(["verify-c", str(broken), "--data", str(data), "--timesteps", "8"]) == 1
    assert "verify-c: DISAGREE" in capsys.readouterr().out
    assert main(["verify-c", str(tmp_path), "--data", str(data)]) == 2  # no C output
