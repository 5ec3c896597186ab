"""The quantize pass (passes/quantize.py) and the simulator's fixed-point mode."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.backends.sim import network, runtime
from snnc.driver import Options, compile_model
from snnc.ir import ops as O
from snnc.passes import PASSES, Quantize
from snnc.passmanager import parse_pipeline


@pytest.fixture(scope="module")
def mnist_pair():
    """The example CNN compiled in float and in fixed point (16-bit weights)."""
    src, calib = EXAMPLES / "mnist_cnn.onnx", EXAMPLES / "mnist_calib.npz"
    return {a: compile_model(src, None, calib=calib, options=Options(arith=a)).graph
            for a in ("float", "fixed")}


def test_pass_is_registered_and_in_the_fixed_pipeline():
    assert "quantize" in PASSES
    assert Options(arith="fixed").passes()[-1] == Quantize(weight_bits=16, input_bits=8)
    assert "quantize" not in Options().pipeline_text()
    (p,) = parse_pipeline("quantize{weight_bits=8,input_bits=6}")
    assert (p.weight_bits, p.input_bits) == (8, 6)


def test_fixed_graph_is_integer_with_power_of_two_weight_scales(mnist_pair):
    g, f = mnist_pair["fixed"], mnist_pair["float"]
    assert "fixed-point" in g.facts
    fx = g.meta["fixed_point"]
    assert fx["input_bits"] == 8 and fx["weight_bits"] == 16
    for op, fop in zip([o for o in g.ops if isinstance(o, (O.Conv, O.Dense))],
                       [o for o in f.ops if isinstance(o, (O.Conv, O.Dense))]):
        wq, w = g.params[op.weight], f.params[fop.weight]
        assert wq.dtype == np.int16 and np.abs(wq).max() >= 2 ** 14  # uses the 16 bits
        e = fx["scales"][op.out] / fx["scales"][op.x]
        assert e == 2.0 ** round(np.log2(e))  # a power of two: exact rescale
        assert np.abs(wq / e - w).max() <= 0.5 / e + 1e-12  # round to nearest
    for op in g.ops:
        if isinstance(op, O.IFNeuron):
            th = g.params[op.threshold]
            assert th.dtype == np.int32 and (th == fx["scales"][op.x]).all()  # theta = 1


def test_fixed_simulation_is_integer_and_input_quantization_documented(mnist_pair):
    x = np.array([[[[0.0, 0.5, 1.0, -200.0]]]], np.float32)
    assert runtime.quantize_input(x, 8).tolist() == [[[[0, 128, 256, -32768]]]]
    assert runtime.fixed_v_init(np.array([65536, 3]), 0.5).tolist() == [32768, 1]
    with np.load(EXAMPLES / "mnist_test.npz") as z:
        xs = z["x"][:4]
    tr = network(mnist_pair["fixed"]).simulate(xs, 8)
    assert tr["output"].dtype == np.int64


@pytest.mark.slow
def test_fixed_point_accuracy_within_one_point_of_float(mnist_pair):
    """16-bit fixed point vs float32 on 100 MNIST test images at T = 32: measured equal
    accuracy (0.99 both, 2026-11-23); we allow 1 percentage point."""
    with np.load(EXAMPLES / "mnist_test.npz") as z:
        x, y = z["x"][:100], z["y"][:100]
    acc = {a: runtime.evaluate(network(g), x, y, [32])["snn"][0]["accuracy"]
           for a, g in mnist_pair.items()}
    assert acc["float"] > 0.9
    assert abs(acc["fixed"] - acc["float"]) <= 0.01, acc


def test_float_simulation_unchanged_by_fixed_mode(mnist_pair):
    """The float graph never takes the integer path."""
    net = network(mnist_pair["float"])
    assert not net.fixed
    with np.load(EXAMPLES / "mnist_test.npz") as z:
        xs = z["x"][:2]
    assert net.simulate(xs, 4)["output"].dtype == np.float32
