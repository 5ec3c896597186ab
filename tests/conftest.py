"""Shared fixtures: paths, small models built in code, the shipped example."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED_DATA = ROOT.parent / "shared" / "data" / "mnist5k.npz"


def _init(name: str, a: np.ndarray) -> onnx.TensorProto:
    return nh.from_array(np.asarray(a, np.float32), name)


def small_cnn(seed: int = 0, *, pool_first: bool = False, residual: bool = False,
              softmax: bool = True) -> onnx.ModelProto:
    """Conv-BN-Relu-MaxPool-(residual block)-Flatten-Gemm(-Softmax) on (N,1,12,12)."""
    rng = np.random.default_rng(seed)
    inits = [_init("w1", rng.normal(0, 0.4, (6, 1, 3, 3))), _init("b1", rng.normal(0, .1, 6)),
             _init("g", rng.uniform(.5, 1.5, 6)), _init("be", rng.normal(0, .1, 6)),
             _init("mu", rng.normal(0, .1, 6)), _init("var", rng.uniform(.5, 1.5, 6)),
             _init("w3", rng.normal(0, 0.3, (6, 6, 3, 3))), _init("b3", rng.normal(0, .1, 6)),
             _init("w2", rng.normal(0, 0.3, (10, 6 * 6 * 6))),
             _init("b2", rng.normal(0, 0.1, 10))]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["bn1"],
                         name="bn1")]
    if pool_first:
        nodes += [h.make_node("MaxPool", ["bn1"], ["p1"], kernel_shape=[2, 2],
                              strides=[2, 2], name="pool1"),
                  h.make_node("Relu", ["p1"], ["r1"], name="relu1")]
        last = "r1"
    else:
        nodes += [h.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
                  h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2],
                              strides=[2, 2], name="pool1")]
        last = "p1"
    if residual:
        nodes += [h.make_node("Conv", [last, "w3", "b3"], ["c3"], pads=[1, 1, 1, 1],
                              name="conv3"),
                  h.make_node("Relu", ["c3"], ["r3"], name="relu3"),
                  h.make_node("Add", ["r3", last], ["s3"], name="add3"),
                  h.make_node("Relu", ["s3"], ["r4"], name="relu4")]
        last = "r4"
    nodes += [h.make_node("Flatten", [last], ["f"], name="flat"),
              h.make_node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1, name="fc")]
    out = "logits"
    if softmax:
        nodes.append(h.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"))
        out = "probs"
    g = h.make_graph(nodes, "small_cnn",
                     [h.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 12, 12])],
                     [h.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 10])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(m)
    return m


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def mnist() -> dict[str, np.ndarray]:
    """The shipped example test data (made from ../shared/data/mnist5k.npz)."""
    with np.load(EXAMPLES / "mnist_test.npz") as z:
        test = {"x": z["x"], "y": z["y"]}
    with np.load(EXAMPLES / "mnist_calib.npz") as z:
        test["calib"] = z["x"]
    return test
