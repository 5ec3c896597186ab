"""Finite input time (METHODS 6), the spiking-softmax readout (METHODS 7) and their CLI."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from snnc.backends.sim import network
from snnc.backends.sim.runtime import _softmax_flat
from snnc.cli import main
from snnc.driver import Options, compile_model
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.passes import FiniteInput, ShiftBias


def _mlp(path, seed: int = 0, n_in: int = 12, hidden: int = 16, n_out: int = 5):
    r = np.random.default_rng(seed)
    inits = [nh.from_array(r.normal(0, .6, s).astype(np.float32), n) for n, s in
             (("w1", (hidden, n_in)), ("b1", (hidden,)), ("w2", (n_out, hidden)),
              ("b2", (n_out,)))]
    nodes = [h.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1, name="fc1"),
             h.make_node("Relu", ["a"], ["ra"], name="relu1"),
             h.make_node("Gemm", ["ra", "w2", "b2"], ["y"], transB=1, name="fc2")]
    g = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", n_in])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), path)
    return {i.name: nh.to_array(i) for i in inits}


def _calib(tmp_path, n_in: int = 12, n: int = 64, seed: int = 1):
    x = np.random.default_rng(seed).uniform(0, 1, (n, n_in)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    return x


def test_fit_matches_a_hand_written_reference(tmp_path):
    """Input and biases for T1 steps, then drain: the simulator equals the loop below."""
    _mlp(tmp_path / "m.onnx")
    x = _calib(tmp_path)
    t1, t2 = 3, 4
    res = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz",
                        options=Options(fit=f"{t1}:{t2}"))
    g = res.graph
    assert g.meta["timesteps"] == t1 + t2 and g.meta["input_steps"] == t1
    enc = [op for op in g.ops if isinstance(op, O.Encode)]
    cur = [op for op in g.ops if isinstance(op, O.Current)]
    assert enc[0].steps == t1 and len(cur) == 2 and all(c.steps == t1 for c in cur)
    dense = [op for op in g.ops if isinstance(op, O.Dense)]
    assert all(d.bias is None for d in dense)
    w1, w2 = (g.params[d.weight] for d in dense)
    b1, b2 = (g.params[c.bias] for c in cur)
    tr = network(g).simulate(x, t1 + t2)
    v = np.zeros((len(x), w1.shape[0]), np.float32)
    acc = np.zeros((len(x), w2.shape[0]), np.float32)
    for t in range(t1 + t2):
        on = np.float32(t < t1)
        v += on * (x @ w1.T) + on * b1
        s = (v >= 1).astype(np.float32)
        v -= s
        acc += s @ w2.T + on * b2
        np.testing.assert_allclose(tr["output"][t], acc, rtol=1e-5, atol=1e-5)


def _drain_net(**if_attrs: Any) -> Any:
    """26 IF neurons (threshold 1, subtract reset) fed the input for T1 = 4 steps, read
    out as spike counts; `if_attrs` are added to the IF's attributes."""
    from snnc.backends.sim.runtime import Network

    graph = {"format": "snnc-ir", "version": 1, "facts": ["spiking"], "meta": {},
             "inputs": [{"name": "x", "shape": [26], "dtype": "float32"}],
             "outputs": ["n"], "shapes": {"e": [26], "s": [26], "n": [26]},
             "ops": [{"kind": "encode", "name": "enc", "out": "e", "inputs": ["x"],
                      "params": {}, "attrs": {"coding": "analog", "seed": 0, "steps": 4}},
                     {"kind": "if", "name": "if", "out": "s", "inputs": ["e"],
                      "params": {"threshold": "th"},
                      "attrs": {"reset": "subtract", "v_init": 0.0, **if_attrs}},
                     {"kind": "accumulate", "name": "n", "out": "n", "inputs": ["s"],
                      "params": {}, "attrs": {}}]}
    return Network(graph, {"th": np.float32(1.0)})


def test_drain_releases_stored_charge():
    """One IF layer driven by a constant current z for T1 steps emits floor(T1 z) spikes
    when the drain is long enough (nothing is lost), and at most T1 + T2."""
    z = np.linspace(0, 2.5, 26, dtype=np.float32)[None]
    net = _drain_net()
    long = net.simulate(z, 4 + 8)["output"][-1, 0]
    np.testing.assert_array_equal(long, np.floor(4 * z[0] + 1e-6))
    short = net.simulate(z, 4 + 2)["output"][-1, 0]
    np.testing.assert_array_equal(short, np.minimum(np.floor(4 * z[0] + 1e-6), 6))


def test_bounded_neuron_fires_at_most_t1_times_under_fit(tmp_path):
    """A Clip(0, 1) neuron stands for min(z, 1): with finite input time its count is
    floor(min(z, 1) * T1) however long the drain (the cap is the clip)."""
    z = np.linspace(0, 2.5, 26, dtype=np.float32)[None]
    net = _drain_net(bounded=True, max_spikes=4)
    want = np.floor(4 * np.minimum(z[0], 1) + 1e-6)
    for drain in (0, 3, 20):
        np.testing.assert_array_equal(net.simulate(z, 4 + drain)["output"][-1, 0], want)

    # the pass sets the cap on bounded neurons only
    r = np.random.default_rng(0)
    inits = [nh.from_array(r.normal(0, .6, (8, 6)).astype(np.float32), "w1"),
             nh.from_array(r.normal(0, .6, (4, 8)).astype(np.float32), "w2"),
             nh.from_array(np.float32(0), "lo"), nh.from_array(np.float32(1), "hi")]
    nodes = [h.make_node("MatMul", ["x", "w1t"], ["a"], name="mm1"),
             h.make_node("Clip", ["a", "lo", "hi"], ["ca"], name="clip1"),
             h.make_node("MatMul", ["ca", "w2t"], ["b"], name="mm2"),
             h.make_node("Relu", ["b"], ["y"], name="relu2")]
    inits[0] = nh.from_array(nh.to_array(inits[0]).T.copy(), "w1t")
    inits[1] = nh.from_array(nh.to_array(inits[1]).T.copy(), "w2t")
    g = h.make_graph(nodes, "c", [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), tmp_path / "c.onnx")
    np.savez(tmp_path / "cal.npz", x=r.uniform(0, 1, (32, 6)).astype(np.float32))
    res = compile_model(tmp_path / "c.onnx", None, calib=tmp_path / "cal.npz",
                        options=Options(fit="5:7"))
    caps = {op.origin: op.max_spikes for op in res.graph.ops if isinstance(op, O.IFNeuron)}
    assert caps == {"clip1": 5, "relu2": 0}


def test_fit_option_errors():
    for bad in ("5", "0:3", "a:b", "5:-1"):
        with pytest.raises(SnncError, match="finite input time"):
            Options(fit=bad).validate()


def test_fit_and_shift_bias_use_t1(tmp_path):
    _mlp(tmp_path / "m.onnx")
    _calib(tmp_path)
    opts = Options(fit="5:4", shift_bias=True, timesteps=100)
    assert ShiftBias(timesteps=5) in opts.passes()
    assert opts.passes()[-1] == FiniteInput(steps=5)
    res = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz", options=opts)
    assert res.graph.meta["timesteps"] == 9


def _softmax_graph(rate: float, seed: int = 0):
    from snnc.backends.sim.runtime import Network

    graph = {"format": "snnc-ir", "version": 1, "facts": ["spiking"], "meta": {},
             "inputs": [{"name": "x", "shape": [4], "dtype": "float32"}],
             "outputs": ["n"], "shapes": {"e": [4], "s": [4], "n": [4]},
             "ops": [{"kind": "encode", "name": "enc", "out": "e", "inputs": ["x"],
                      "params": {}, "attrs": {"coding": "analog", "seed": 0, "steps": 0}},
                     {"kind": "spikesoftmax", "name": "sm", "out": "s", "inputs": ["e"],
                      "params": {}, "attrs": {"rate": rate, "seed": seed}},
                     {"kind": "accumulate", "name": "n", "out": "n", "inputs": ["s"],
                      "params": {}, "attrs": {}}]}
    return Network(graph, {})


def test_spiking_softmax_draws_from_the_softmax_of_the_potential():
    net = _softmax_graph(1.0)
    logits = np.array([[0.5, 0.0, -0.5, 0.2]], np.float32)
    x = np.repeat(logits, 4000, axis=0)
    tr = net.simulate(x, 1)
    first = tr["output"][0]  # one step: one spike per sample, drawn from softmax(V(1))
    assert (first.sum(axis=1) == 1).all()
    np.testing.assert_allclose(first.mean(axis=0), _softmax_flat(logits)[0], atol=0.03)


def test_spiking_softmax_clock_rate_seed_and_batching():
    net = _softmax_graph(0.25, seed=3)
    x = np.random.default_rng(0).normal(0, 1, (50, 4)).astype(np.float32)
    a = net.simulate(x, 40)["output"][-1]
    assert abs(a.sum() / (50 * 40) - 0.25) < 0.05  # the clock fires at its rate
    b = np.concatenate([net.simulate(x[:20], 40)["output"][-1],
                        net.simulate(x[20:], 40, sample_offset=20)["output"][-1]])
    np.testing.assert_array_equal(a, b)  # independent of batching
    c = _softmax_graph(0.25, seed=4).simulate(x, 40)["output"][-1]
    assert not np.array_equal(a, c)
    # accumulated evidence sharpens the draw: the counts' argmax is the input's argmax
    long = _softmax_graph(1.0).simulate(x, 200)["output"][-1]
    assert (long.argmax(axis=1) == x.argmax(axis=1)).mean() >= 0.9


def test_cli_fit_and_softmax_readout(tmp_path, mnist):
    data = tmp_path / "d.npz"
    np.savez(data, x=mnist["x"][:100], y=mnist["y"][:100])
    calib = tmp_path / "c.npz"
    np.savez(calib, x=mnist["calib"][:100])
    from conftest import EXAMPLES

    model = str(EXAMPLES / "mnist_cnn.onnx")
    assert main([model, "-o", str(tmp_path / "fit"), "--calib", str(calib),
                 "--fit", "12:6"]) == 0
    assert main(["eval", str(tmp_path / "fit"), "--data", str(data),
                 "--json", str(tmp_path / "fit.json")]) == 0
    import json

    rows = json.loads((tmp_path / "fit.json").read_text())["snn"]
    assert rows[0]["timesteps"] == 18 and rows[0]["accuracy"] > 0.85
    assert main([model, "-o", str(tmp_path / "sm"), "--calib", str(calib),
                 "--readout", "softmax", "--seed", "7"]) == 0
    assert "spikesoftmax" in (tmp_path / "sm" / "model.snnir").read_text()
    assert main(["eval", str(tmp_path / "sm"), "--data", str(data), "--timesteps", "64",
                 "--json", str(tmp_path / "sm.json")]) == 0
    rows = json.loads((tmp_path / "sm.json").read_text())["snn"]
    assert rows[0]["accuracy"] > 0.85
    assert main([model, "-o", str(tmp_path / "bad"), "--calib", str(calib),
                 "--fit", "12"]) == 2
    assert not (tmp_path / "bad").exists()
