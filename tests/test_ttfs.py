"""Temporal coding (TDSNN, passes/ttfs.py): every mechanism on a hand-computed example,
then the whole conversion on the shipped example against onnxruntime, and the CLI's
contract (flags that do not apply are errors; eval's JSON)."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from conftest import EXAMPLES, small_cnn
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from snnc.backends.sim import network
from snnc.cli import main
from snnc.driver import Options, compile_model, evaluate, load_graph
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.semantics import ttfs_g, ttfs_threshold, ttfs_tick, ttfs_time

L = 5.0


def _run(g: Graph, x: np.ndarray, steps: int, record: dict | None = None) -> np.ndarray:
    """Simulate an in-memory spiking graph; the first spike step of every recorded op."""
    g.facts |= {"spiking"}
    g.meta.setdefault("timesteps", steps)
    traces: dict[str, list[np.ndarray]] = {}

    def rec(name, t0, spikes):
        traces.setdefault(name, []).append(np.array(spikes))

    out = network(g).simulate(x, steps, record=rec)["output"]
    if record is not None:
        for name, parts in traces.items():
            s = np.concatenate(parts)  # (steps, B, ...)
            record[name] = np.where(s.any(axis=0), s.argmax(axis=0), -1)
            record[name + ".count"] = s.sum(axis=0)
    return out


def _graph(shape) -> Graph:
    g = Graph(inputs=["x"], outputs=[])
    g.values["x"] = Value("x", tuple(shape))
    return g


# ------------------------------------------------------------------ mechanisms ------------
def test_encoder_spike_times_by_hand():
    """T(x) = ceil(5 ln(x + 1)): 0 -> 0, 0.2 -> ceil(0.91) = 1, 1 -> ceil(3.47) = 4,
    3 -> ceil(6.93) = 7, 100 -> ceil(23.08) = 24, clipped at the deadline 12; rounding
    (shift 1/2): 1 -> ceil(2.97) = 3."""
    x = np.array([[0.0, 0.2, 1.0, 3.0, 100.0]], np.float32)
    assert ttfs_time(x, L).tolist() == [[0, 1, 4, 7, 24]]
    assert ttfs_time(x, L, 0.5).tolist() == [[0, 1, 3, 7, 23]]
    g = _graph((5,))
    g.add_op(O.TTFSEncode(name="enc", out="s", x="x", leak=L, deadline=12))
    g.outputs = ["s"]
    rec: dict = {}
    _run(g, x, 14, rec)
    assert rec["enc"].tolist() == [[0, 1, 4, 7, 12]]
    assert rec["enc.count"].max() == 1


def test_ticking_weight_and_threshold_by_hand():
    # (1 - e^-0.2) e^-1.6 = 0.181269 * 0.201897
    assert ttfs_tick(5.0, 8) == pytest.approx(0.0365976, rel=1e-5)
    assert ttfs_threshold(5.0, 8, 0.0) == 0.0
    # (1 - e^0.1) e^-1.6 = -0.105171 * 0.201897
    assert ttfs_threshold(5.0, 8, 0.5) == pytest.approx(-0.0212337, rel=1e-5)


def test_one_neuron_spike_time_by_hand():
    """Inputs 1 and 3 spike at steps 4 and 7 (L = 5); weights 0.5 and 0.25, negated;
    inhibition until step 8 (span 8). A = 0.5 e^0.8 + 0.25 e^1.4 = 1.11277 + 1.01380 =
    2.12657, so the neuron fires ceil(5 ln 3.12657) = ceil(5.6997) = 6 steps after
    release: at step 14. A second neuron with weights -0.5, -0.25 (A < 0) fires at once,
    at release (step 8)."""
    g = _graph((2,))
    g.params["w"] = -np.array([[0.5, 0.25], [-0.5, -0.25]], np.float32)
    g.add_op(O.TTFSEncode(name="enc", out="s", x="x", leak=L, deadline=8))
    g.add_op(O.Dense(name="fc", out="i", x="s", weight="w"))
    g.add_op(O.TTFSNeuron(name="n", out="y", x="i", leak=L, release=8, span=8,
                          deadline=20))
    g.outputs = ["y"]
    rec: dict = {}
    _run(g, np.array([[1.0, 3.0]], np.float32), 30, rec)
    a = 0.5 * math.exp(0.8) + 0.25 * math.exp(1.4)
    assert math.ceil(L * math.log(a + 1)) == 6
    assert rec["n"].tolist() == [[14, 8]]


def test_deadline_clips_a_late_neuron():
    """A value beyond the window fires at release + deadline (clipped, like saturation)."""
    g = _graph((1,))
    g.params["w"] = -np.array([[50.0]], np.float32)
    g.add_op(O.TTFSEncode(name="enc", out="s", x="x", leak=L, deadline=4))
    g.add_op(O.Dense(name="fc", out="i", x="s", weight="w"))
    g.add_op(O.TTFSNeuron(name="n", out="y", x="i", leak=L, release=4, span=4, deadline=3))
    g.outputs = ["y"]
    rec: dict = {}
    _run(g, np.array([[1.0]], np.float32), 12, rec)
    assert rec["n"].tolist() == [[7]]


def test_max_pool_fires_with_the_latest_spike():
    """Window inputs 0.2, 9, 1, 0.5 spike at 1, 12, 4, 3 (L = 5): the output fires at 12,
    with the maximum (reverse coding)."""
    x = np.array([[[[0.2, 9.0], [1.0, 0.5]]]], np.float32)
    assert ttfs_time(x, L).reshape(-1).tolist() == [1, 12, 4, 3]
    g = _graph((1, 2, 2))
    g.add_op(O.TTFSEncode(name="enc", out="s", x="x", leak=L, deadline=20))
    g.add_op(O.TTFSMaxPool(name="mp", out="p", x="s", kernel=(2, 2), strides=(2, 2)))
    g.outputs = ["p"]
    out = _run(g, x, 16)[:, 0].reshape(16)  # the pool is the graph output
    assert np.flatnonzero(out).tolist() == [12]


def test_readout_reads_the_ann_output():
    """The readout's value at release is sum_i W_i G(x_i) + b: with inputs 1 and 3 (G =
    e^0.8, e^1.4), weights 2 and -1 and a bias 0.3 (bias neuron weight 0.3 / G(1),
    spiking at T(1) = 4): 2 e^0.8 - e^1.4 + 0.3."""
    g = _graph((2,))
    g.params["w"] = np.array([[2.0, -1.0]], np.float32)
    g.params["b"] = np.array([0.3 / float(ttfs_g(1.0, L))], np.float32)
    g.add_op(O.TTFSEncode(name="enc", out="s", x="x", leak=L, deadline=8))
    g.add_op(O.Dense(name="fc", out="i", x="s", weight="w"))
    g.add_op(O.TTFSReadout(name="r", out="y", x="i", bias="b", leak=L, ref=0, release=8,
                           bias_at=4))
    g.outputs = ["y"]
    out = _run(g, np.array([[1.0, 3.0]], np.float32), 9)
    assert out[8, 0, 0] == pytest.approx(2 * math.exp(0.8) - math.exp(1.4) + 0.3, rel=1e-6)


def _two_neuron_model(pads: bool = False) -> onnx.ModelProto:
    """x -> Gemm(w = [[2]], b = 0.5) -> Relu -> Gemm(3) -> y, or with pads a 1-channel
    3x3 conv (weights 1..9, bias 0.5, zero padding 1) on a 3x3 input."""
    if pads:
        w = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)
        nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                 h.make_node("Relu", ["c"], ["r"]), h.make_node("Flatten", ["r"], ["f"]),
                 h.make_node("Gemm", ["f", "w2"], ["y"], transB=1)]
        inits = [nh.from_array(w, "w"), nh.from_array(np.array([0.5], np.float32), "b"),
                 nh.from_array(np.ones((1, 9), np.float32), "w2")]
        shape, out = [1, 1, 3, 3], [1, 1]
    else:
        nodes = [h.make_node("Gemm", ["x", "w", "b"], ["c"], transB=1),
                 h.make_node("Relu", ["c"], ["r"]),
                 h.make_node("Gemm", ["r", "w2"], ["y"], transB=1)]
        inits = [nh.from_array(np.array([[2.0]], np.float32), "w"),
                 nh.from_array(np.array([0.5], np.float32), "b"),
                 nh.from_array(np.array([[3.0]], np.float32), "w2")]
        shape, out = [1, 1], [1, 1]
    graph = h.make_graph(nodes, "tiny", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                  shape)],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _compile(tmp_path, model, x, **opts):
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=x)
    compile_model(tmp_path / "m.onnx", tmp_path / "out", calib=tmp_path / "c.npz",
                  options=Options(coding="ttfs", **opts))
    return load_graph(tmp_path / "out")


def test_offset_compensation_on_a_two_neuron_net(tmp_path):
    """Relu(2x + 0.5) with calibration inputs 0.25 (so the layer's scale is 1 and a range
    of 1 keeps values as they are): the spike of x carries G(x) ~ x + 1, so the layer
    computes 2 G(x) + b' and offset compensation sets b' = 0.5 - 2 * 1 = -1.5; stored as
    the bias neuron's weight -1.5 / G(1), negated: +1.5 / G(1). The readout (not
    negated) keeps 3 G(r) + (0 - 3)."""
    g = _compile(tmp_path, _two_neuron_model(), np.full((4, 1), 0.25, np.float32),
                 ttfs_range=1.0)
    g1 = float(ttfs_g(1.0, L, 0.5))
    n = next(op for op in g.ops if isinstance(op, O.TTFSNeuron))
    r = next(op for op in g.ops if isinstance(op, O.TTFSReadout))
    assert g.params[n.bias].reshape(-1)[0] == pytest.approx(1.5 / g1, rel=1e-6)
    assert g.params[r.bias].reshape(-1)[0] == pytest.approx(-3.0 / g1, rel=1e-6)
    dense = [op for op in g.ops if isinstance(op, O.Dense)]
    assert g.params[dense[0].weight].item() == -2.0  # negated
    assert g.params[dense[1].weight].item() == 3.0  # the output layer is not


def test_offset_compensation_counts_only_the_weights_inside_the_padding(tmp_path):
    """A 3x3 conv (weights 1..9) with zero padding: the centre neuron sums all nine
    weights (45), a corner neuron only the four that see the image (top-left: 5+6+8+9 =
    28). Its bias becomes 0.5 - that, over G(1), negated, in the layer's scale lambda
    (normalize: the largest activation, 0.5 + 45)."""
    g = _compile(tmp_path, _two_neuron_model(pads=True),
                 np.full((4, 1, 3, 3), 1.0, np.float32), ttfs_range=1.0)
    g1 = float(ttfs_g(1.0, L, 0.5))
    n = next(op for op in g.ops if isinstance(op, O.TTFSNeuron))
    lam = g.meta["lambda"][n.name]
    assert lam == pytest.approx(45.5, rel=1e-5)
    b = g.params[n.bias].reshape(3, 3) * g1 * lam
    assert b[1, 1] == pytest.approx(-(0.5 - 45), rel=1e-5)
    assert b[0, 0] == pytest.approx(-(0.5 - 28), rel=1e-5)


def test_schedule_is_pipelined(tmp_path):
    """Each layer releases one window after its inputs' reference step; the readout's
    release is the decision, and the network runs release + 1 steps."""
    g = _compile(tmp_path, small_cnn(1), np.random.default_rng(0).random((16, 1, 12, 12),
                                                                       np.float32))
    enc = next(op for op in g.ops if isinstance(op, O.TTFSEncode))
    n1, n2 = [op for op in g.ops if isinstance(op, O.TTFSNeuron)][:1] * 2
    r = next(op for op in g.ops if isinstance(op, O.TTFSReadout))
    assert n1.release == enc.deadline == n1.span
    assert r.ref == n1.release and r.release == n1.release + n1.deadline
    assert g.meta["timesteps"] == r.release + 1
    del n2


# ------------------------------------------------------------------ conversion ------------
@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("ttfs") / "out"
    compile_model(EXAMPLES / "mnist_cnn.onnx", out, calib=EXAMPLES / "mnist_calib.npz",
                  options=Options(coding="ttfs"))
    return out


def test_example_converts_within_1pp_with_one_spike_per_neuron(example, tmp_path):
    """The shipped BN + max-pool CNN (trained with plain ReLU), offset-compensated, L = 5:
    on 400 test digits, at most one spike per neuron, every neuron fires (a ReLU zero
    fires at release), accuracy within a point of onnxruntime's."""
    z = np.load(EXAMPLES / "mnist_test.npz")
    np.savez(tmp_path / "d.npz", x=z["x"][:400], y=z["y"][:400])
    g = load_graph(example)
    res = evaluate(example, tmp_path / "d.npz", [int(g.meta["timesteps"])])
    row = res["snn"][0]
    assert row["spikes_per_neuron"] == 1.0
    neurons = sum(math.prod(g.shape(op.out)) for op in g.ops
                  if isinstance(op, (O.TTFSNeuron, O.TTFSEncode)))
    assert row["spikes_per_sample"] == neurons
    assert row["decision_steps"] == g.meta["timesteps"]
    assert row["accuracy"] >= res["ann_accuracy"] - 0.01
    assert "diagnostics" not in res


def test_value_view_equals_onnxruntime(example):
    """Differential: the TTFS graph's ANN view (every spike read as its unrounded value,
    runtime rate kernels) gives onnxruntime's logits: normalization, the range, the bias
    neurons, offset compensation and negation compose to the ANN exactly."""
    import onnxruntime as ort

    g = load_graph(example)
    x = np.load(EXAMPLES / "mnist_test.npz")["x"][:20]
    view = network(g).run_rates(x, [g.outputs[0]])[g.outputs[0]]
    m = onnx.load(EXAMPLES / "mnist_cnn.onnx")
    for node in m.graph.node:  # the logits, before the softmax
        if node.op_type == "Softmax":
            logits = node.input[0]
    m.graph.output.append(onnx.helper.make_tensor_value_info(logits, TensorProto.FLOAT,
                                                               None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run([logits], {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(view, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_ttfs_output_is_deterministic(example, tmp_path):
    out2 = tmp_path / "again"
    compile_model(EXAMPLES / "mnist_cnn.onnx", out2, calib=EXAMPLES / "mnist_calib.npz",
                  options=Options(coding="ttfs"))
    for name in ("graph.json", "params.npz", "model.snnir", "report.json"):
        assert (out2 / name).read_bytes() == (example / name).read_bytes()


# ------------------------------------------------------------------ CLI -------------------
@pytest.mark.parametrize("flag", [["--shift-bias"], ["--calibrate-bias"], ["--fit", "5:4"],
                                  ["--norm", "max"], ["--reset", "zero"],
                                  ["--readout", "spikes"], ["--input-coding", "poisson"],
                                  ["--arith", "fixed"], ["--timesteps", "32"],
                                  ["--backend", "c"], ["--backend", "place", "--target",
                                                       "loihi2"]])
def test_flags_that_do_not_apply_are_errors(tmp_path, capsys, flag):
    rc = main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"), "--calib",
               str(EXAMPLES / "mnist_calib.npz"), "--coding", "ttfs", *flag])
    assert rc == 2
    assert "--coding ttfs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ttfs_needs_calibration_and_leak_needs_ttfs(tmp_path, capsys):
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"),
                 "--coding", "ttfs"]) == 2
    assert "calibration data" in capsys.readouterr().err
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(tmp_path / "o"), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--leak", "3"]) == 2
    assert "--coding ttfs only" in capsys.readouterr().err


def test_residual_join_is_a_clear_error(tmp_path):
    with pytest.raises(SnncError, match="reads 2 spiking layers"):
        _compile(tmp_path, small_cnn(0, residual=True),
                 np.random.default_rng(0).random((8, 1, 12, 12), np.float32))


def test_eval_json_and_refused_diagnostics(example, tmp_path, capsys):
    z = np.load(EXAMPLES / "mnist_test.npz")
    np.savez(tmp_path / "d.npz", x=z["x"][:50], y=z["y"][:50])
    assert main(["eval", str(example), "--data", str(tmp_path / "d.npz"), "--diagnostics",
                 str(tmp_path / "d.json")]) == 2
    assert "does not apply" in capsys.readouterr().err
    length = int(load_graph(example).meta["timesteps"])
    assert main(["eval", str(example), "--data", str(tmp_path / "d.npz"), "--timesteps",
                 f"10,{length + 6}", "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert [e["decision_steps"] for e in r["snn"]] == [10, length]
    for e in r["snn"]:
        assert set(e) == {"timesteps", "accuracy", "spikes_per_sample", "synops_per_sample",
                          "spikes_per_neuron", "decision_steps"}
        assert e["spikes_per_neuron"] <= 1
    assert r["ttfs"]["decision_steps"] == length
    layers = r["ttfs"]["layers"]
    assert all(la["last_spike_step"] < length for la in layers)


# ------------------------------------------------------------------ retrained with G(x) ---
def _gate_nodes(x: str, out: str, leak: float, tag: str) -> tuple[list, list]:
    """The chain G(x) = exp(ceil(ln(x + 1) * L) / L) as PyTorch's exporter writes it: the
    constant L in Constant nodes placed between the links, after the chain's start."""
    c = [nh.from_array(np.array(1.0, np.float32), f"{tag}_one")]
    n = [h.make_node("Add", [x, f"{tag}_one"], [f"{tag}_a"]),
         h.make_node("Log", [f"{tag}_a"], [f"{tag}_b"]),
         h.make_node("Constant", [], [f"{tag}_L"],
                     value=nh.from_array(np.array(leak, np.float32))),
         h.make_node("Mul", [f"{tag}_b", f"{tag}_L"], [f"{tag}_c"]),
         h.make_node("Ceil", [f"{tag}_c"], [f"{tag}_d"]),
         h.make_node("Div", [f"{tag}_d", f"{tag}_L"], [f"{tag}_e"]),
         h.make_node("Exp", [f"{tag}_e"], [out])]
    return n, c


def _gated_mlp(leak: float = 5.0, gate_hidden: bool = True) -> onnx.ModelProto:
    """x (8) -> G -> Gemm(12) -> Relu -> G -> Gemm(4): a network retrained for TTFS."""
    rng = np.random.default_rng(3)
    n1, c1 = _gate_nodes("x", "gx", leak, "g0")
    n2, c2 = _gate_nodes("r", "gr", leak, "g1")
    nodes = n1 + [h.make_node("Gemm", ["gx", "w1", "b1"], ["z"], transB=1),
                  h.make_node("Relu", ["z"], ["r"])]
    nodes += n2 + [h.make_node("Gemm", ["gr" if gate_hidden else "r", "w2", "b2"], ["y"],
                               transB=1)]
    if not gate_hidden:
        nodes = [n for n in nodes if not n.output[0].startswith("g1_")
                 and n.output[0] != "gr"]
        c2 = []
    inits = c1 + c2 + [nh.from_array(rng.normal(0, 0.6, (12, 8)).astype(np.float32), "w1"),
                       nh.from_array(rng.normal(0, 0.3, 12).astype(np.float32), "b1"),
                       nh.from_array(rng.normal(0, 0.6, (4, 12)).astype(np.float32), "w2"),
                       nh.from_array(rng.normal(0, 0.3, 4).astype(np.float32), "b2")]
    graph = h.make_graph(nodes, "gated", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                   ["N", 8])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    onnx.checker.check_model(m, full_check=True)
    return m


def test_gate_chain_is_fused_and_matches_onnxruntime():
    import onnxruntime as ort
    from snnc.backends.sim import interpret
    from snnc.frontend import import_model

    m = _gated_mlp(leak=3.0)
    res = import_model(m)
    gates = [op for op in res.graph.ops if op.kind == "ttfsgate"]
    assert len(gates) == 2 and all(op.leak == 3.0 for op in gates)
    assert not any(r.status == "unsupported" for r in res.report)
    x = np.random.default_rng(0).uniform(0, 3, (64, 8)).astype(np.float32)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    got = interpret(res.graph, {"x": x})["y"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_network_retrained_with_g_converts_exactly(tmp_path):
    """With G(x) in the ANN, the SNN computes the ANN itself: every spike carries exactly
    G of its neuron's value (ceil timing, no offset compensation, no rescaling), so the
    readout at the decision step is onnxruntime's output."""
    import onnxruntime as ort

    m = _gated_mlp()
    x = np.random.default_rng(1).uniform(0, 2, (32, 8)).astype(np.float32)
    g = _compile(tmp_path, m, x)
    assert not any(isinstance(op, O.Affine) for op in g.ops)
    assert "normalize" not in json.loads((tmp_path / "out" / "report.json").read_text())[
        "pipeline"]
    steps = int(g.meta["timesteps"])
    out = network(g).simulate(x, steps)["output"][-1]
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_g_gates_need_ttfs_and_every_layer_gated(tmp_path, capsys):
    onnx.save(_gated_mlp(), tmp_path / "g.onnx")
    np.savez(tmp_path / "c.npz", x=np.ones((4, 8), np.float32))
    assert main([str(tmp_path / "g.onnx"), "-o", str(tmp_path / "o"), "--calib",
                 str(tmp_path / "c.npz")]) == 2
    assert "--coding ttfs" in capsys.readouterr().err
    with pytest.raises(SnncError, match="did not pass G"):
        _compile(tmp_path, _gated_mlp(gate_hidden=False), np.ones((4, 8), np.float32))


def test_standalone_runtime_runs_a_ttfs_network(example, tmp_path):
    """OUT/snn_runtime.py (numpy only) carries the temporal-coding kernels: the same
    accuracy as snnc eval on the same data and length."""
    import subprocess
    import sys

    z = np.load(EXAMPLES / "mnist_test.npz")
    np.savez(tmp_path / "d.npz", x=z["x"][:100], y=z["y"][:100])
    steps = int(load_graph(example).meta["timesteps"])
    out = subprocess.run([sys.executable, str(example / "snn_runtime.py"), str(example),
                          "--data", str(tmp_path / "d.npz"), "--timesteps", str(steps)],
                         check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    acc = float(out.split("accuracy=")[1].split()[0])
    res = evaluate(example, tmp_path / "d.npz", [steps])
    assert acc == pytest.approx(res["snn"][0]["accuracy"])


def test_place_refuses_a_ttfs_output(example, capsys):
    assert main(["place", str(example), "--target", "loihi2"]) == 2
    assert "temporally coded" in capsys.readouterr().err
    assert not (example / "place").exists()
