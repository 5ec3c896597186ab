"""The simulator's kernels against each other: numpy's (the definition), onnxruntime's
and the native ones, on small networks that exercise every branch (windows with padding,
ceil mode and dilation, grouped / strided / dilated convolutions, pooled spikes into a
convolution, per-channel thresholds, reset to zero, initial membranes).

Contract (backends/sim/native.py, ort_kernels.py): fixed point identical everywhere;
float IF scans and max-pool gates bit-identical; float synapses within summation-order
tolerance. Also: tiles of (samples x steps) change nothing, and the simulator runs
without a C compiler.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx_builders import build_model, weights
from snnc.backends.sim import accelerated, native, network
from snnc.backends.sim.ort_kernels import OrtKernels
from snnc.driver import Options, compile_model
from snnc.ir import ops as O

LIB = native.load()
need_native = pytest.mark.skipif(LIB is None, reason=f"native kernels: {native.status()}")

POOLS = {  # spiking max-pool variants: (kernel, strides, pads, dilations, ceil_mode)
    "2x2": ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 0),
    "3x3-pad": ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0),
    "ceil": ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 1),
    "dilated": ([2, 2], [1, 1], [0, 0, 0, 0], [2, 2], 0),
}
CONVS = {  # second convolution: (group, strides, dilations, pads)
    "plain": (1, [1, 1], [1, 1], [1, 1, 1, 1]),
    "grouped-strided": (2, [2, 2], [1, 1], [1, 1, 1, 1]),
    "dilated": (1, [1, 1], [2, 2], [2, 2, 2, 2]),
}


def _model(pool: str, conv: str, avgpool: bool, seed: int = 0) -> onnx.ModelProto:
    """conv 1->4 (pad 1), ReLU, MaxPool variant, [AveragePool 2x2 s1,] conv 4->6 variant,
    ReLU, Flatten, Gemm -> 5 classes, on 11x11 inputs (odd: ceil mode matters)."""
    r = np.random.default_rng(seed)
    k, s, p, d, ceil = POOLS[pool]
    g, cs, cd, cp = CONVS[conv]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=k, strides=s, pads=p,
                         dilations=d, ceil_mode=ceil)]
    last = "p1"
    if avgpool:
        nodes.append(h.make_node("AveragePool", ["p1"], ["a1"], kernel_shape=[2, 2]))
        last = "a1"
    nodes += [h.make_node("Conv", [last, "w2", "b2"], ["c2"], group=g, strides=cs,
                          dilations=cd, pads=cp),
              h.make_node("Relu", ["c2"], ["r2"]),
              h.make_node("Flatten", ["r2"], ["f"])]
    inits = {"w1": weights(r, (4, 1, 3, 3)) * 2, "b1": r.normal(0, .1, 4).astype(np.float32),
             "w2": weights(r, (6, 4 // g, 3, 3)) * 2,
             "b2": r.normal(0, .1, 6).astype(np.float32)}
    probe = build_model(nodes, (1, 11, 11), inits, outputs=["f"])
    width = next(int(np.prod([x.dim_value for x in v.type.tensor_type.shape.dim[1:]]))
                 for v in probe.graph.output)
    inits["w3"] = weights(r, (5, width))
    nodes.append(h.make_node("Gemm", ["f", "w3"], ["y"], transB=1))
    return build_model(nodes, (1, 11, 11), inits, outputs=["y"])


def _graph(tmp_path, pool="2x2", conv="plain", avgpool=False, arith="float",
           per_channel=False, **opts):
    onnx.save(_model(pool, conv, avgpool), tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(0, 1, (24, 1, 11, 11)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    g = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz",
                      options=Options(arith=arith, **opts)).graph
    if per_channel:  # thresholds of shape (C, 1, 1): the per-neuron threshold path
        ops = []
        r = np.random.default_rng(2)
        for op in g.ops:
            if isinstance(op, O.IFNeuron) and len(g.shape(op.out)) == 3:
                th = g.params[op.threshold]
                c = g.shape(op.out)[0]
                scale = r.uniform(0.7, 1.3, (c, 1, 1))
                g.params[op.name + ".th"] = (
                    np.maximum(1, np.round(th * scale)).astype(th.dtype) if arith == "fixed"
                    else (th * scale).astype(np.float32))
                op = dataclasses.replace(op, threshold=op.name + ".th")
            ops.append(op)
        g = g.rebuild(ops)
    return g, x


def _trace(graph, x, accel, steps=20, **kw):
    """(outputs, {spike source: per-step spikes}) of one simulation."""
    net = network(graph, accel)
    rec: dict[str, list] = {}
    tr = net.simulate(x, steps, record=lambda n, t0, c: rec.setdefault(n, []).append(
        np.array(c)), **kw)
    return tr["output"], {k: np.concatenate(v) for k, v in rec.items()}


def _same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        np.testing.assert_array_equal(a[1][k], b[1][k], err_msg=k)


def _force(monkeypatch, path: str):
    """Make the native cost model always pick the event kernels, or never."""
    cost = dict(native.COST)
    cost.update({"event": {"dense_mac": 1e6, "event_output": 0.0},
                 "dense": {"event_tap": 1e12, "event_vector": 1e12}}[path])
    monkeypatch.setattr(native, "COST", cost)


@need_native
@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("arith", ["float", "fixed"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["one-threshold", "per-channel"])
def test_native_neurons_and_gates_are_bit_identical(tmp_path, monkeypatch, pool, arith,
                                                     per_channel):
    """Dense synapses everywhere: the native IF scans and max-pool gates must reproduce
    numpy's spikes and outputs exactly, float included."""
    _force(monkeypatch, "dense")
    g, x = _graph(tmp_path, pool=pool, arith=arith, per_channel=per_channel, v_init=0.25)
    ref = _trace(g, x, None)
    kernels = native.NativeKernels(LIB)
    net = network(g, [kernels])
    assert {op["kind"] for op in net.ops if op["name"] in net._step} == {"if", "spikemaxpool"}
    _same(ref, _trace(g, x, [kernels]))
    _same(ref, _trace(g, x, [native.NativeKernels(LIB, threads=3)]))
    assert kernels.calls["event"] == 0


@need_native
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_native_reset_and_spike_budget(tmp_path, monkeypatch, reset):
    """Reset to zero, and max_spikes (finite input time on a Clip network)."""
    _force(monkeypatch, "dense")
    g, x = _graph(tmp_path, reset=reset, fit="3:6")
    g = g.rebuild([dataclasses.replace(op, max_spikes=2) if isinstance(op, O.IFNeuron)
                   else op for op in g.ops])
    _same(_trace(g, x, None), _trace(g, x, [native.NativeKernels(LIB)]))


@need_native
@pytest.mark.parametrize("pool", list(POOLS))
@pytest.mark.parametrize("per_channel", [False, True], ids=["one-threshold", "per-channel"])
def test_native_signed_neurons(tmp_path, monkeypatch, pool, per_channel):
    """Signed neurons (-1/0/+1): the native scan reproduces numpy's spikes and outputs
    exactly (dense synapses), its event counts too; on event synapses (values -1 and
    +1 taken as weights' multipliers) within summation order."""
    _force(monkeypatch, "dense")
    g, x = _graph(tmp_path, pool=pool, per_channel=per_channel, v_init=0.25, signed=True)
    assert any(op.signed for op in g.ops if isinstance(op, O.IFNeuron))
    ref = _trace(g, x, None)
    assert any((v < 0).any() for v in ref[1].values())
    _same(ref, _trace(g, x, [native.NativeKernels(LIB)]))
    _same(ref, _trace(g, x, [native.NativeKernels(LIB, threads=3)]))
    a = network(g).simulate(x, 20, marks=[7])
    b = network(g, [native.NativeKernels(LIB)], threads=2).simulate(x, 20, marks=[7])
    for k in a["spikes"]:
        np.testing.assert_array_equal(a["spikes"][k], b["spikes"][k], err_msg=k)
    np.testing.assert_array_equal(a["synops"], b["synops"])
    monkeypatch.undo()  # _force builds on the current costs
    _force(monkeypatch, "event")
    kernels = native.NativeKernels(LIB)
    got = _trace(g, x, [kernels])
    assert kernels.calls["event"] > 0
    scale = float(np.abs(ref[0]).max())
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-4 * scale)
    for k in ref[1]:
        assert (ref[1][k] == got[1][k]).mean() > 0.999, k


@need_native
@pytest.mark.parametrize("conv", list(CONVS))
@pytest.mark.parametrize("avgpool", [False, True])
def test_event_synapses(tmp_path, monkeypatch, conv, avgpool):
    """One weight column per nonzero input (forced for every call): fixed point exact,
    float within summation-order tolerance; spikes (binary) and pooled spikes."""
    _force(monkeypatch, "event")
    g, x = _graph(tmp_path, conv=conv, avgpool=avgpool, arith="fixed")
    kernels = native.NativeKernels(LIB, threads=2)
    _same(_trace(g, x, None), _trace(g, x, [kernels]))
    assert kernels.calls["event"] > 0 and kernels.calls["dense"] == 0
    g, x = _graph(tmp_path, conv=conv, avgpool=avgpool)
    ref, got = _trace(g, x, None), _trace(g, x, [native.NativeKernels(LIB)])
    scale = float(np.abs(ref[0]).max())
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-4 * scale)
    for k in ref[1]:
        assert (ref[1][k] == got[1][k]).mean() > 0.999, k


@pytest.mark.parametrize("arith", ["float", "fixed"])
def test_onnxruntime_kernels(tmp_path, arith):
    """onnxruntime's conv, average pool and gate window maximum: fixed point exact (the
    conv only where its float32 sums are exact), float within tolerance."""
    g, x = _graph(tmp_path, pool="3x3-pad", avgpool=True, arith=arith)
    ref, got = _trace(g, x, None), _trace(g, x, [OrtKernels(1)])
    if arith == "fixed":
        _same(ref, got)
    else:
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-4,
                                   atol=1e-4 * float(np.abs(ref[0]).max()))


def test_onnxruntime_refuses_inexact_fixed_point_convs():
    """A fixed-point conv whose weights sum past 2^24 is not exact in float32: the
    onnxruntime kernel is not offered, the runtime's exact integer kernel runs."""
    op = {"kind": "conv", "name": "c", "params": {"weight": "w", "bias": None},
          "attrs": {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
                    "groups": 1}}
    small, big = np.full((2, 1, 2, 2), 1000, np.int32), np.full((2, 1, 2, 2), 2**23, np.int32)
    k = OrtKernels(1)
    assert k.linear(op, {"w": small}, True, ["spikes"]) is not None
    assert k.linear(op, {"w": big}, True, ["spikes"]) is None
    assert k.linear(op, {"w": small}, True, ["sparse"]) is None  # not binary


@pytest.mark.parametrize("arith", ["float", "fixed"])
def test_tiles_change_nothing(tmp_path, arith):
    """One sample x one step per tile, or the whole batch at once: the same simulation
    (samples are independent; only float GEMM summation order may differ)."""
    g, x = _graph(tmp_path, pool="ceil", arith=arith)
    net = network(g, accelerated(), threads=3)
    a = net.simulate(x, 12, tile_bytes=1, marks=[5])
    b = net.simulate(x, 12, tile_bytes=1 << 30, marks=[5])
    assert net.tiling(len(x), 12, 1) == (1, 1)
    assert a["marks"] == b["marks"] == [5, 12]
    if arith == "fixed":
        np.testing.assert_array_equal(a["output"], b["output"])
        for k in a["spikes"]:
            np.testing.assert_array_equal(a["spikes"][k], b["spikes"][k])
        np.testing.assert_array_equal(a["synops"], b["synops"])
    else:
        np.testing.assert_allclose(a["output"], b["output"], rtol=1e-4,
                                   atol=1e-4 * float(np.abs(b["output"]).max()))


def test_without_a_c_compiler_the_simulator_still_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native, "_status", "not loaded")
    monkeypatch.setattr(native, "_compiler", lambda: None)
    assert native.load() is None
    assert "no C compiler" in native.status()
    kernels = accelerated()
    assert [type(k).__name__ for k in kernels] == ["OrtKernels"]
    g, x = _graph(tmp_path, arith="fixed")
    _same(_trace(g, x, None), _trace(g, x, kernels))


@need_native
def test_native_build_is_cached_and_keyed_by_source(tmp_path, monkeypatch):
    """A second load reuses the compiled library; another source builds another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = native._build(native._compiler())
    assert isinstance(first, type(tmp_path)) and first.is_file()
    mtime = first.stat().st_mtime_ns
    assert native._build(native._compiler()) == first and first.stat().st_mtime_ns == mtime
    src = tmp_path / "native.c"
    src.write_text(native.SOURCES[0].read_text() + "\n/* changed */\n")
    hdr = tmp_path / "native_kernels.h"
    hdr.write_text(native.SOURCES[1].read_text())
    monkeypatch.setattr(native, "SOURCES", [src, hdr])
    assert native._build(native._compiler()) != first
