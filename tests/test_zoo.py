"""The real architectures shipped inside the onnx package (backend/test/data/light).

Their weights come as ConstantOfShape nodes (every weight 0.02), which makes every output
near-uniform; the differential test therefore also replaces each materialized weight by
seeded random values of the same shape (He-scaled), so a wrong kernel cannot hide.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from helpers import ort_run, rel_err
from onnx import numpy_helper as nh
from snnc.backends.sim import interpret
from snnc.cli import main
from snnc.frontend import import_model, import_onnx

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")

SUPPORTED = ["light_vgg19", "light_resnet50", "light_squeezenet", "light_densenet121",
             "light_inception_v2"]
# what each unsupported model lacks (the op types snnc check must name)
UNSUPPORTED = {"light_bvlc_alexnet": {"LRN"}, "light_zfnet512": {"LRN"},
               "light_inception_v1": {"LRN"}, "light_shufflenet": {"Transpose"}}


def _randomized(path: str) -> onnx.ModelProto:
    """The model with each ConstantOfShape weight replaced by random initializers."""
    m = onnx.load(path)
    rng = np.random.default_rng(0)
    inits = {i.name: nh.to_array(i) for i in m.graph.initializer}
    bn = {n.input[k]: k for n in m.graph.node if n.op_type == "BatchNormalization"
          for k in (1, 4)}  # BN scale and variance: keep positive
    keep = []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(d) for d in inits[n.input[0]])
            name = n.output[0]
            if len(shape) > 1:  # weights: He-scaled
                fan_in = int(np.prod(shape[1:]))
                a = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
            elif name in bn:
                a = rng.uniform(0.5, 1.5, shape)
            else:
                a = rng.normal(0, 0.1, shape)
            m.graph.initializer.append(nh.from_array(a.astype(np.float32), name))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.ir_version = max(m.ir_version, 4)  # IR >= 4: initializers need not be inputs
    return m


def _input(g) -> np.ndarray:
    return np.random.default_rng(1).random((1, *g.shape(g.inputs[0])), dtype=np.float32)


@pytest.mark.parametrize("name", SUPPORTED)
def test_zoo_model_matches_onnxruntime(name):
    """Randomized weights; the tensor feeding the final Softmax is compared too, since
    softmax over 1000 classes flattens differences."""
    model = _randomized(os.path.join(LIGHT, name + ".onnx"))
    sm = [n for n in model.graph.node if n.op_type == "Softmax"]
    if sm:
        vi = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
        model.graph.output.append(vi[sm[-1].input[0]])
    g = import_model(model).graph
    x = _input(g)
    got = list(interpret(g, {g.inputs[0]: x}).values())
    want = ort_run(model, x)
    assert len(got) == len(want) == (2 if sm else 1)
    for a, b in zip(got, want):
        assert rel_err(a.reshape(b.shape), b) <= 1e-4, name


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_zoo_unsupported_are_named(name, capsys):
    path = os.path.join(LIGHT, name + ".onnx")
    res = import_onnx(path, strict=False)
    assert res.graph is None
    primary = {r.op_type for r in res.unsupported if not r.detail.startswith("not checked")}
    assert primary == UNSUPPORTED[name]
    assert main(["check", path]) == 1
    out = capsys.readouterr().out
    for op in UNSUPPORTED[name]:
        assert f"snnc has no conversion for {op}" in out
    assert "cannot be compiled" in out


@pytest.mark.parametrize("name", SUPPORTED)
def test_zoo_check_passes(name, capsys):
    assert main(["check", os.path.join(LIGHT, name + ".onnx")]) == 0
    assert "can be compiled" in capsys.readouterr().out


@pytest.mark.parametrize("name", SUPPORTED)
def test_zoo_model_compiles(name, tmp_path, capsys):
    """`snnc check` passing means the compile succeeds: every model the README lists
    compiles with calibration data (SqueezeNet's and Inception v2's max-pools after a
    Concat of ReLUs see spikes: the Concat keeps each channel's scale)."""
    path = os.path.join(LIGHT, name + ".onnx")
    g = import_model(onnx.load(path)).graph
    x = np.random.default_rng(2).random((2, *g.shape(g.inputs[0])), dtype=np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    assert main(["check", path]) == 0
    assert main([path, "-o", str(tmp_path / "out"), "--calib", str(tmp_path / "c.npz"),
                 "--timesteps", "4", "--tune", "off"]) == 0, capsys.readouterr().err
    assert "compiled" in capsys.readouterr().out
