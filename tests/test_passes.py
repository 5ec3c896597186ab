"""Every ANN-preserving pass, checked against onnxruntime on the ANN-level IR.

normalize is ANN-preserving at the graph outputs (they are restored to scale 1), so the
normalized ANN must still compute what onnxruntime computes.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import small_cnn
from helpers import ort_run, rel_err
from snnc.backends.sim import interpret
from snnc.calibration import OnnxCalibration
from snnc.frontend import import_model
from snnc.ir import ops as O
from snnc.passes import PassContext
from snnc.passmanager import PIPELINES, parse_pipeline, pipeline_spec, run_passes

ANN_PASSES = ["fold-batchnorm", "fold-affine", "relu-before-maxpool",
              "normalize{method=max}", "normalize{method=percentile:99}"]
MODELS = {"plain": dict(), "pool-first": dict(pool_first=True),
          "residual": dict(residual=True), "no-softmax": dict(softmax=False)}


@pytest.mark.parametrize("variant", sorted(MODELS))
def test_each_prefix_of_the_pipeline_preserves_the_ann(variant, rng):
    model = small_cnn(3, **MODELS[variant])
    x = rng.random((16, 1, 12, 12), dtype=np.float32)
    want = ort_run(model, x)
    res = import_model(model)
    ctx = PassContext(calibration=OnnxCalibration(res.model, x))
    g = res.graph
    for spec in ANN_PASSES:
        if spec.startswith("normalize") and "normalized" in g.facts:
            g = res.graph
            g = run_passes(g, parse_pipeline("fold-batchnorm,fold-affine,"
                                             "relu-before-maxpool"), ctx)
        g = run_passes(g, parse_pipeline(spec), ctx)
        got = list(interpret(g, {"x": x}).values())
        for a, b in zip(got, want):
            assert rel_err(a, b) <= 1e-4, spec


def test_fold_batchnorm_removes_every_batchnorm(rng):
    g = run_passes(import_model(small_cnn()).graph, parse_pipeline("fold-batchnorm"),
                   PassContext())
    assert not any(isinstance(op, O.BatchNorm) for op in g.ops)
    assert "no-batchnorm" in g.facts
    # the fused conv keeps the BN's ONNX tensor name (calibration reads it)
    assert any(isinstance(op, O.Conv) and op.out == "bn1" for op in g.ops)


def test_relu_before_maxpool_swaps():
    g = run_passes(import_model(small_cnn(pool_first=True)).graph,
                   parse_pipeline("relu-before-maxpool"), PassContext())
    kinds = [op.kind for op in g.ops]
    assert kinds.index("relu") < kinds.index("maxpool")


def test_normalize_makes_percentile_activations_unit(rng):
    """After max-norm, every neuron layer's maximum calibration activation is 1."""
    model = small_cnn(5, residual=True)
    x = rng.random((32, 1, 12, 12), dtype=np.float32)
    res = import_model(model)
    ctx = PassContext(calibration=OnnxCalibration(res.model, x))
    g = run_passes(res.graph, parse_pipeline("fold-batchnorm,fold-affine,"
                                             "relu-before-maxpool,normalize{method=max}"), ctx)
    neurons = [op.out for op in g.ops if isinstance(op, O.Relu)]
    acts = interpret(g, {"x": x}, outputs=neurons)
    for name, a in acts.items():
        assert a.max() == pytest.approx(1.0, rel=1e-4), name


def test_residual_join_gets_one_scale(rng):
    """Both inputs of the residual Add arrive in the scale of the neuron after it."""
    model = small_cnn(7, residual=True)
    x = rng.random((32, 1, 12, 12), dtype=np.float32)
    res = import_model(model)
    ctx = PassContext(calibration=OnnxCalibration(res.model, x))
    g = run_passes(res.graph, parse_pipeline("fold-batchnorm,normalize{method=max}"), ctx)
    add = next(op for op in g.ops if isinstance(op, O.Add))
    prod = g.producers()
    # the skip edge (spikes of pool1, scale lambda_pool) is rescaled by an Affine
    assert any(isinstance(prod.get(v), O.Affine) for v in add.xs)


def test_pipeline_strings_round_trip():
    passes = parse_pipeline(PIPELINES["rate"])
    spec = pipeline_spec(passes)
    assert pipeline_spec(parse_pipeline(spec)) == spec
    assert [p.name for p in passes][-1] == "convert-to-snn"


def _concat_model(seed: int = 0):
    """Two conv branches with different scales joined by Concat, then conv+relu+gemm."""
    from onnx import TensorProto
    from onnx import helper as h
    from onnx import numpy_helper as nh

    r = np.random.default_rng(seed)

    def init(name, shape, scale):
        return nh.from_array(r.normal(0, scale, shape).astype(np.float32), name)

    inits = [init("wa", (4, 1, 3, 3), 0.3), init("wb", (3, 1, 1, 1), 2.0),
             init("wc", (5, 7, 3, 3), 0.3), init("wd", (10, 5 * 8 * 8), 0.2)]
    nodes = [h.make_node("Conv", ["x", "wa"], ["a"], name="ca"),
             h.make_node("Relu", ["a"], ["ra"], name="ra"),
             h.make_node("Conv", ["x", "wb"], ["b"], pads=[0, 0, 0, 0], name="cb"),
             h.make_node("Relu", ["b"], ["rb0"], name="rb0"),
             h.make_node("MaxPool", ["rb0"], ["rb"], kernel_shape=[3, 3], name="pb"),
             h.make_node("Concat", ["ra", "rb"], ["cat"], axis=1, name="cat"),
             h.make_node("Conv", ["cat", "wc"], ["c"], name="cc"),
             h.make_node("Relu", ["c"], ["rc"], name="rc"),
             h.make_node("Flatten", ["rc"], ["f"], name="f"),
             h.make_node("Gemm", ["f", "wd"], ["y"], transB=1, name="fc")]
    g = h.make_graph(nodes, "cat", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             ["N", 1, 12, 12])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)])


def test_concat_join_is_consistent(rng):
    model = _concat_model()
    x = rng.random((16, 1, 12, 12), dtype=np.float32)
    res = import_model(model)
    ctx = PassContext(calibration=OnnxCalibration(res.model, x))
    g = run_passes(res.graph, parse_pipeline("fold-batchnorm,normalize{method=max}"), ctx)
    assert rel_err(list(interpret(g, {"x": x}).values())[0], ort_run(model, x)[0]) <= 1e-4
    cat = next(op for op in g.ops if isinstance(op, O.Concat))
    prod = g.producers()
    # a channel Concat keeps each branch's scale (spikes stay spikes for a max-pool after
    # it); the consumer absorbs the per-channel scale, so the ANN still matches onnxruntime
    assert not any(isinstance(prod.get(v), O.Affine) for v in cat.xs)


def test_normalize_reads_activations_a_chunk_of_layers_at_a_time(rng, monkeypatch):
    """A deep network's activations are requested in chunks and dropped after use; the
    scales are those of one request."""
    from snnc.passes import normalize

    model = small_cnn(residual=True)
    x = rng.random((16, 1, 12, 12), dtype=np.float32)
    res = import_model(model)
    spec = "fold-batchnorm,normalize{method=channel:99}"
    whole = run_passes(res.graph, parse_pipeline(spec),
                       PassContext(calibration=OnnxCalibration(res.model, x)))
    calls: list[list[str]] = []
    cal = OnnxCalibration(res.model, x)
    orig = cal.activations
    monkeypatch.setattr(cal, "activations", lambda names: calls.append(names) or orig(names))
    monkeypatch.setattr(normalize, "CHUNK_BYTES", 1)  # one layer per request
    chunked = run_passes(res.graph, parse_pipeline(spec), PassContext(calibration=cal))
    assert len(calls) > 2 and all(len(c) == 1 for c in calls)
    assert not cal._cache  # forgotten after use
    assert whole.meta["lambda"] == chunked.meta["lambda"]
