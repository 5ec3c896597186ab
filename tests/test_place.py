"""The neuromorphic backend: target descriptions, hand-computed cost models, placements
re-checked by an independent checker against every limit, errors, determinism, CLI."""
from __future__ import annotations

import copy
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import EXAMPLES, small_cnn
from onnx import helper as h
from onnx_builders import build_model
from snnc.backends.place import check as C
from snnc.backends.place import load_target, netmodel, preset_names
from snnc.backends.place import partition as P
from snnc.backends.place.targets import PRESET_DIR, parse_target
from snnc.cli import main
from snnc.driver import compile_model, load_graph, place
from snnc.ir.errors import SnncError

PRESETS = ["generic_mesh", "loihi1", "loihi2", "paicore2", "speck", "spinnaker1",
           "truenorth", "xylo_audio2"]


def _raw(name: str) -> dict:
    return json.loads((PRESET_DIR / f"{name}.json").read_text())


def _compiled(tmp_path: Path, model: onnx.ModelProto, shape, name: str = "m",
              n: int = 16) -> tuple[Path, Path]:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    x = np.random.default_rng(0).random((n, *shape), np.float32)
    np.savez(tmp_path / f"{name}_calib.npz", x=x)
    out = tmp_path / f"{name}_out"
    compile_model(path, out, calib=tmp_path / f"{name}_calib.npz")
    return out, tmp_path / f"{name}_calib.npz"


def _checked(out: Path, target) -> dict:
    """Re-check OUT/place against the target with the independent checker."""
    t = load_target(target) if isinstance(target, str) else target
    placement = json.loads((out / "place" / "placement.json").read_text())
    with open(out / "place" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    C.check(load_graph(out), t, placement, rows)
    assert all(r["status"] == "OK" for r in rows)
    return json.loads((out / "place" / "summary.json").read_text())


# ------------------------------------------------------------------ targets ----------------
def test_presets_load_and_cite_every_number():
    assert set(PRESETS) <= set(preset_names())
    for name in preset_names():
        t = load_target(name)
        assert t.status in ("verified", "partial", "unverified")
        for cls in t.core_classes:
            for r, v in cls.limits.items():
                if v is not None:
                    assert cls.sources[r].split()[0] in t.sources, (name, r)
    assert load_target("loihi2").status == "partial"
    assert [c.name for c in load_target("speck").core_classes] == [
        "core0-2", "core3-4", "core5-6", "core7-8"]


def _set(d: dict, path: str, value) -> dict:
    d = copy.deepcopy(d)
    keys = path.replace("]", "").replace("[", ".").split(".")
    cur = d
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    if value is KeyError:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return d


@pytest.mark.parametrize("path,value,field", [
    ("core_classes[0].neurons.value", -3, "core_classes[0].neurons.value"),
    ("core_classes[0].fan_in.src", "nowhere", "core_classes[0].fan_in.src"),
    ("core_classes[0].fan_in.status", "guess", "core_classes[0].fan_in.status"),
    ("core_classes[0].kinds", ["dendrite"], "core_classes[0].kinds"),
    ("mesh.hop", KeyError, "mesh.hop"),
    ("mesh.chips.value", 3, "mesh.chips"),
    ("mesh.routers", [64], "mesh.routers"),
    ("synapse_cost.model", "magic", "synapse_cost.model"),
    ("schema", "snnc-target/v0", "schema"),
    ("split.layers", "yes", "split.layers"),
    ("weights.bits.value", 32, "weights.bits.value"),
    ("layer_rules", {"kernel_max": "big"}, "layer_rules"),
])
def test_invalid_description_names_the_field(path, value, field):
    with pytest.raises(SnncError) as e:
        parse_target(_set(_raw("loihi1"), path, value), where="t.json")
    assert f"t.json: {field}" in str(e.value)


# ------------------------------------------------------------------ cost models ------------
def _conv_net() -> onnx.ModelProto:
    """(1, 4, 4) -> conv 3x3 (1 -> 1, no padding) -> relu -> flatten -> dense 4 -> 2."""
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("Flatten", ["r"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1, name="fc")]
    return build_model(nodes, (1, 4, 4), {
        "w": np.abs(rng.normal(0, 1, (1, 1, 3, 3))) + 0.1, "b": np.zeros(1),
        "w2": rng.normal(0, 1, (2, 4)), "b2": np.zeros(2)})


def _target(model: str, **cost) -> object:
    raw = _set(_raw("generic_mesh"), "synapse_cost", {"model": model, **cost})
    return parse_target(raw)


@pytest.fixture(scope="module")
def conv_graph(tmp_path_factory):
    out, _ = _compiled(tmp_path_factory.mktemp("conv"), _conv_net(), (1, 4, 4))
    return load_graph(out)


def test_hand_computed_cost_models(conv_graph):
    """A 3x3 convolution of a 4x4 input: 16 input axons; input pixel (i, j) reaches
    r_i * r_j of the 4 neurons with r = (1, 2, 2, 1), 36 synapses in all."""
    model = netmodel.build(conv_graph)
    pop = model.populations["relu"]
    box = (0, 1, 0, 2, 0, 2)

    def u(t):
        return P.usage(model, t, pop, box)

    base = u(_target("count"))
    assert (base.neurons, base.fan_in, base.synapses) == (4, 16, 36)
    assert sorted(base.flat["input"][1].tolist()) == sorted(
        int(a * b) for a in (1, 2, 2, 1) for b in (1, 2, 2, 1))
    assert base.synapse_memory == 36
    assert u(_target("crossbar")).synapse_memory == 16 * 4
    assert u(_target("bytes", bytes_per_synapse=4, row_header_bytes=12)
             ).synapse_memory == 36 * 4 + 16 * 12
    # loihi1: 4 neurons need 2 index bits -> 6 in the index map; an axon reaching all 4
    # neurons drops the index: 4 * 8 + 10 = 42 bits; the others 1 * 14 + 10 = 24 or
    # 2 * 14 + 10 = 38 bits: every axon rounds up to one 64-bit word
    lo = _target("loihi1_groups", group=64, header_bits=10, word_bits=64,
                 index_bits=[0, 6, 7, 8, 9, 10, 11, 12])
    assert u(lo).synapse_memory == 16 * 64
    # the dense readout: 4 axons, each reaching both neurons (no index): 2 * 8 + 10 bits
    ro = model.populations[next(n for n, p in model.populations.items()
                                if p.kind == "readout")]
    r = P.usage(model, lo, ro, (0, 2, 0, 1, 0, 1))
    assert (r.fan_in, r.synapses, r.synapse_memory) == (4, 8, 4 * 64)
    # PAICORE: fan-in 16 <= 1152 axons: LCN 0, (512 >> 0) // 8 = 64 neurons per core
    pai = load_target("paicore2")
    lim = P.limits(pai, pai.core_classes[0], u(pai))
    assert lim["neurons"] == (4, 64) and lim["fan_in"][0] == 16
    # Speck (sinabs): kernel = 1 * 2^(ceil_log2(9) + ceil_log2(1)) = 16, neuron =
    # 1 * 2^(1 + 1) = 4, bias 1; the readout as a 2x2 conv to 2 channels: 1 * 2^(2 + 1),
    # neuron 2 * 2^0, bias 2
    sp = load_target("speck")
    assert P.speck_memory(pop) == {"kernel_memory": 16, "neuron_memory": 4,
                                   "bias_memory": 1}
    assert P.speck_memory(ro) == {"kernel_memory": 8, "neuron_memory": 2, "bias_memory": 2}
    assert P.limits(sp, sp.core_classes[0], u(sp))["kernel_memory"] == (16, 16384)


def test_lower_bound_by_hand(conv_graph):
    from snnc.backends.place import report

    model = netmodel.build(conv_graph)
    t = parse_target(_set(_set(_raw("generic_mesh"), "core_classes[0].neurons.value", 3),
                          "core_classes[0].synapse_memory.value", 10))
    plan = P.partition(model, t)
    lb = report.lower_bound(model, t, plan)
    # 6 neurons / 3 per core; 36 + 8 synapses / 10 per core
    assert lb["by_resource"] == {"neurons": 2, "synapse_memory": 5}
    assert lb["cores"] == 5


# ------------------------------------------------------------------ placements -------------
@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("ex") / "out"
    compile_model(EXAMPLES / "mnist_cnn.onnx", out, calib=EXAMPLES / "mnist_calib.npz")
    return out


def _variants():
    mlp = build_model([h.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1, name="fc1"),
                       h.make_node("Relu", ["a"], ["r"], name="relu1"),
                       h.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="fc2")],
                      (12,), {"w1": np.random.default_rng(1).normal(0, .5, (40, 12)),
                              "b1": np.zeros(40),
                              "w2": np.random.default_rng(2).normal(0, .5, (5, 40)),
                              "b2": np.zeros(5)})
    return {"residual": (small_cnn(3, residual=True, softmax=False), (1, 12, 12)),
            "maxpool": (small_cnn(4, pool_first=True, softmax=False), (1, 12, 12)),
            "mlp": (mlp, (12,))}


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    d = tmp_path_factory.mktemp("var")
    return {k: _compiled(d, m, s, k) for k, (m, s) in _variants().items()}


@pytest.mark.parametrize("target", PRESETS)
def test_example_placed_within_every_limit(example, target):
    try:
        res = place(example, target, calib=EXAMPLES / "mnist_calib.npz")
    except SnncError as e:  # a refusal names the layer
        assert e.node and target in ("truenorth", "xylo_audio2", "speck"), str(e)
        return
    s = _checked(example, target)
    assert s == res["summary"]
    assert s["violations"] == 0 and s["cores_used"] >= s["cores_lower_bound"] >= 1
    assert "rates: measured on calibration data" in res["text"]


@pytest.mark.parametrize("target", PRESETS)
@pytest.mark.parametrize("net", ["residual", "maxpool", "mlp"])
def test_variants_placed_within_every_limit(variants, net, target):
    out, calib = variants[net]
    try:
        place(out, target, calib=calib)
    except SnncError as e:
        assert e.node
        return
    _checked(out, target)


def _avg_cnn() -> onnx.ModelProto:
    """The mnist5k cnn_avg architecture (tools/train_mnist.py) with random weights."""
    rng = np.random.default_rng(5)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool1"),
             h.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool2"),
             h.make_node("Flatten", ["p2"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    return build_model(nodes, (1, 28, 28), {
        "w1": rng.normal(0, .3, (16, 1, 5, 5)), "b1": np.zeros(16),
        "w2": rng.normal(0, .1, (32, 16, 5, 5)), "b2": np.zeros(32),
        "w3": rng.normal(0, .1, (10, 512)), "b3": np.zeros(10)})


def test_speck_agrees_with_sinabs(tmp_path):
    """sinabs 3.1.3 maps this architecture (trained: cnn_avg) onto 3 Speck cores with
    kernel memory 512 / 16384 / 8192, neuron memory 16384 / 2048 / 10 and bias 16 / 32 /
    10 entries (tools/bench/vendor_check.py --speck build/models/cnn_avg.onnx)."""
    out, calib = _compiled(tmp_path, _avg_cnn(), (1, 28, 28), n=8)
    place(out, "speck", calib=calib)
    s = _checked(out, "speck")
    assert s["cores_used"] == 3 == s["cores_lower_bound"]
    with open(out / "place" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["core"]) for r in rows] == [0, 1, 2]
    assert [int(r["kernel_memory_used"]) for r in rows] == [512, 16384, 8192]
    assert [int(r["neuron_memory_used"]) for r in rows] == [16384, 2048, 10]
    assert [int(r["bias_memory_used"]) for r in rows] == [16, 32, 10]


def test_max_pool_is_refused_on_speck(example):
    with pytest.raises(SnncError, match="pool by summing"):
        place(example, "speck")


def test_infeasible_layer_names_resource_class_and_fix(example):
    with pytest.raises(SnncError) as e:
        place(example, "truenorth")
    msg = str(e.value)
    assert e.value.node and "fan_in" in msg and "max 256" in msg
    assert "core class 'core'" in msg and "smallest change that fits" in msg


def test_one_layer_per_core_refuses_a_big_layer(tmp_path):
    out, _ = _compiled(tmp_path, _avg_cnn(), (1, 28, 28), n=4)
    raw = _raw("speck")
    for i in range(4):
        raw = _set(raw, f"core_classes[{i}].neuron_memory.value", 4096)
    path = tmp_path / "small_speck.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SnncError, match="neuron_memory") as e:
        place(out, str(path))
    assert "output channels" in str(e.value) and e.value.node


def test_placement_is_deterministic(example, tmp_path):
    place(example, "loihi1", calib=EXAMPLES / "mnist_calib.npz", seed=3)
    first = {p.name: p.read_bytes() for p in (example / "place").iterdir()}
    place(example, "loihi1", calib=EXAMPLES / "mnist_calib.npz", seed=3)
    again = {p.name: p.read_bytes() for p in (example / "place").iterdir()}
    assert first == again
    assert set(first) == {"placement.json", "routes.json", "core_params.json", "report.csv",
                          "layers.csv", "summary.json", "report.txt"}


def test_report_columns_and_placer_beats_in_order(example):
    place(example, "loihi1", calib=EXAMPLES / "mnist_calib.npz")
    with open(example / "place" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    for r in ("neurons", "fan_in", "fan_out_slots", "dest_cores", "synapse_memory"):
        assert f"{r}_used" in rows[0] and f"{r}_max" in rows[0]
    for col in ("binding", "spikes_in", "spikes_out", "synops", "hop_traffic_out", "status"):
        assert col in rows[0]
    s = json.loads((example / "place" / "summary.json").read_text())
    assert s["hop_traffic"] <= s["hop_traffic_in_order"]
    routes = json.loads((example / "place" / "routes.json").read_text())
    assert {"from", "to", "from_core", "to_core", "axons", "rate", "hops"} <= set(routes[0])
    params = json.loads((example / "place" / "core_params.json").read_text())
    some = next(iter(params.values()))["slices"][0]
    assert some["weight_bits"] == 8 and some["weight_rel_rms_err"] is not None


def test_xylo_shares_the_hidden_pool(tmp_path):
    """Two hidden layers of 64 and 32 neurons share Xylo's one pool of 1,000 hidden
    neurons (the recurrent matrix links them); the 8 outputs take the output pool."""
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Gemm", ["x", "w1", "b1"], ["a"], transB=1, name="fc1"),
             h.make_node("Relu", ["a"], ["r1"], name="relu1"),
             h.make_node("Gemm", ["r1", "w2", "b2"], ["b"], transB=1, name="fc2"),
             h.make_node("Relu", ["b"], ["r2"], name="relu2"),
             h.make_node("Gemm", ["r2", "w3", "b3"], ["y"], transB=1, name="fc3")]
    m = build_model(nodes, (16,), {"w1": rng.normal(0, .3, (64, 16)), "b1": np.zeros(64),
                                   "w2": rng.normal(0, .3, (32, 64)), "b2": np.zeros(32),
                                   "w3": rng.normal(0, .3, (8, 32)), "b3": np.zeros(8)})
    out, calib = _compiled(tmp_path, m, (16,))
    place(out, "xylo_audio2", calib=calib)
    s = _checked(out, "xylo_audio2")
    assert s["cores_used"] == 2 == s["cores_lower_bound"]
    placement = json.loads((out / "place" / "placement.json").read_text())
    assert {s["population"]: s["core_class"] for s in placement["slices"]} == {
        "relu1": "hidden", "relu2": "hidden", next(
            s["population"] for s in placement["slices"] if s["core_class"] == "output"):
        "output"}


# ------------------------------------------------------------------ CLI --------------------
def test_cli_place_backend_and_place_command(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(out), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--backend", "place", "--target",
                 "loihi1"]) == 0
    text = capsys.readouterr().out
    assert "placement on loihi1" in text and "lower bound" in text
    assert (out / "place" / "report.csv").is_file()
    assert json.loads((out / "place" / "summary.json").read_text())["target"] == "loihi1"
    assert main(["place", str(out), "--target", "spinnaker1"]) == 0
    assert "placement on spinnaker1" in capsys.readouterr().out
    assert json.loads((out / "place" / "summary.json").read_text())["target"] == "spinnaker1"


def test_cli_place_errors_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    args = [str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(out), "--calib",
            str(EXAMPLES / "mnist_calib.npz"), "--backend", "place"]
    assert main(args) == 2  # no --target
    assert "needs a target" in capsys.readouterr().err and not out.exists()
    assert main(args + ["--target", "truenorth"]) == 2
    err = capsys.readouterr().err
    assert "fan_in" in err and "\n" not in err.strip() and not out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_set(_raw("loihi1"), "core_classes[0].neurons.value", 0)))
    assert main(args + ["--target", str(bad)]) == 2
    assert "core_classes[0].neurons.value" in capsys.readouterr().err
    assert not out.exists()
    assert main(args[:5]) == 0  # compiled without place
    assert main(["place", str(out), "--target", "truenorth"]) == 2
    assert not (out / "place").exists()
    assert main(["place", str(out), "--target", "nosuchchip"]) == 2
    assert "unknown target" in capsys.readouterr().err
    assert main(["place", str(tmp_path), "--target", "loihi1"]) == 2


# ------------------------------------------------------------------ random layer sizes -----
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(c1=st.integers(1, 12), c2=st.integers(1, 24), hw=st.integers(5, 14),
                  k=st.integers(1, 4), stride=st.integers(1, 2), pad=st.integers(0, 1),
                  pool=st.sampled_from(["none", "avg", "max"]),
                  neurons=st.integers(8, 300), fan_in=st.integers(60, 800),
                  memory=st.integers(1000, 40000),
                  cost=st.sampled_from(["count", "crossbar", "loihi1_groups", "bytes"]))
def test_random_layers_fit_or_refuse(tmp_path_factory, c1, c2, hw, k, stride, pad, pool,
                                     neurons, fan_in, memory, cost):
    """Random conv nets on random small targets: a placement keeps every limit (the
    independent checker), or snnc refuses with an error naming a layer."""
    k = min(k, hw)
    rng = np.random.default_rng(c1 * 1000 + c2)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c"], strides=[stride, stride],
                         pads=[pad] * 4, name="conv1"),
             h.make_node("Relu", ["c"], ["r"], name="relu1")]
    last = "r"
    if pool != "none":
        nodes.append(h.make_node("AveragePool" if pool == "avg" else "MaxPool", ["r"],
                                 ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"))
        last = "p"
    nodes += [h.make_node("Conv", [last, "w2", "b2"], ["c2"], pads=[1, 1, 1, 1],
                          name="conv2"),
              h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
              h.make_node("Flatten", ["r2"], ["f"], name="flat")]
    o = (hw + 2 * pad - k) // stride + 1
    if pool != "none":
        o //= 2
    hypothesis.assume(o >= 1)
    nodes.append(h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc"))
    m = build_model(nodes, (2, hw, hw), {
        "w1": rng.normal(0, .5, (c1, 2, k, k)), "b1": np.zeros(c1),
        "w2": rng.normal(0, .3, (c2, c1, 3, 3)), "b2": np.zeros(c2),
        "w3": rng.normal(0, .1, (3, c2 * o * o)), "b3": np.zeros(3)})
    out, calib = _compiled(tmp_path_factory.mktemp("h"), m, (2, hw, hw), n=4)
    raw = _raw("generic_mesh")
    cost_params = {"count": {}, "crossbar": {},
                   "bytes": {"bytes_per_synapse": 2, "row_header_bytes": 4},
                   "loihi1_groups": {"group": 64, "header_bits": 10, "word_bits": 64,
                                     "index_bits": [0, 6, 7, 8, 9, 10, 11, 12]}}[cost]
    raw = _set(raw, "synapse_cost", {"model": cost, **cost_params})
    memory *= {"count": 1, "crossbar": 2, "bytes": 3, "loihi1_groups": 16}[cost]
    for key, v in (("neurons", neurons), ("fan_in", fan_in), ("synapse_memory", memory),
                   ("fan_out_slots", 4 * fan_in)):
        raw = _set(raw, f"core_classes[0].{key}.value", v)
    raw = _set(raw, "mesh.chips.value", 4)
    raw = _set(raw, "mesh.routers", [32, 32])
    t = parse_target(raw)
    path = out.parent / "t.json"
    path.write_text(json.dumps(raw))
    try:
        place(out, str(path), calib=calib)
    except SnncError as e:
        assert e.node or "cores" in str(e)
        hypothesis.event("refused")
        return
    hypothesis.event("placed")
    s = _checked(out, t)
    assert s["cores_used"] >= s["cores_lower_bound"]
    assert math.isfinite(s["hop_traffic"])


# ------------------------------------------------------------------ real architectures -----
@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """VGG-19 and ResNet-50 of the onnx package, weights materialized (test_zoo.py)."""
    from test_zoo import LIGHT, _randomized

    d = tmp_path_factory.mktemp("zoo")
    outs = {}
    for name in ("light_vgg19", "light_resnet50"):
        m = _randomized(str(Path(LIGHT) / f"{name}.onnx"))
        outs[name] = _compiled(d, m, (3, 224, 224), name, n=2)[0]
    return outs


@pytest.mark.parametrize("name", ["light_vgg19", "light_resnet50"])
def test_zoo_placed_within_every_limit(zoo, name):
    place(zoo[name], "loihi2")
    s = _checked(zoo[name], "loihi2")
    assert s["cores_used"] <= 1.10 * s["cores_lower_bound"]
    assert s["hop_traffic_vs_in_order"] <= 0.7


def test_vgg19_is_refused_by_loihi1(zoo):
    """A 3x3 convolution over 512 channels reads 4,608 inputs per neuron; a Loihi 1 core
    has 4,096 input axons, and nengo-loihi splits blocks, never a neuron's fan-in."""
    out = zoo["light_vgg19"]
    before = sorted((p.name, p.read_bytes()) for p in out.glob("place/*"))
    t0 = time.perf_counter()
    with pytest.raises(SnncError, match=r"single neuron of it needs fan_in 4608, max 4096"
                       ) as e:
        place(out, "loihi1")
    assert time.perf_counter() - t0 < 30  # refused before any layer is split
    assert "at most 455 input channels (now 512" in str(e.value)
    assert sorted((p.name, p.read_bytes()) for p in out.glob("place/*")) == before
