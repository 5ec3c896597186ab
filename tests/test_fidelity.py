"""Conversion-fidelity options (issue 3): clip-bound thresholds and shift bias."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from snnc.backends.sim import network
from snnc.cli import main
from snnc.driver import Options, compile_model
from snnc.ir import ops as O


def _clip_mlp(path, relu_last: bool = False):
    """Dense-Clip(0,1)-Dense-Clip(0,2)-Dense, optionally a plain Relu in the middle."""
    r = np.random.default_rng(0)
    inits = [nh.from_array(r.normal(0, .5, s).astype(np.float32), n) for n, s in
             (("w1", (16, 8)), ("w2", (16, 16)), ("w3", (4, 16)))]
    inits += [nh.from_array(np.array(v, np.float32), n)
              for n, v in (("lo", 0.0), ("hi1", 1.0), ("hi2", 2.0))]
    act2 = (h.make_node("Relu", ["b"], ["rb"], name="relu2") if relu_last else
            h.make_node("Clip", ["b", "lo", "hi2"], ["rb"], name="clip2"))
    nodes = [h.make_node("Gemm", ["x", "w1"], ["a"], transB=1, name="fc1"),
             h.make_node("Clip", ["a", "lo", "hi1"], ["ra"], name="clip1"),
             h.make_node("Gemm", ["ra", "w2"], ["b"], transB=1, name="fc2"), act2,
             h.make_node("Gemm", ["rb", "w3"], ["y"], transB=1, name="fc3")]
    g = h.make_graph(nodes, "clipmlp", [h.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                 ["N", 8])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), path)


def test_norm_clip_needs_no_data(tmp_path):
    _clip_mlp(tmp_path / "m.onnx")
    r = compile_model(tmp_path / "m.onnx", tmp_path / "out", options=Options(norm="clip"))
    assert r.report["lambda"] == {"clip1": 1.0, "clip2": 2.0}


def test_norm_clip_names_the_layer_without_a_bound(tmp_path, capsys):
    _clip_mlp(tmp_path / "m.onnx", relu_last=True)
    assert main([str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out"), "--norm",
                 "clip"]) == 2
    err = capsys.readouterr().err
    assert "relu2" in err and "--calib" in err
    assert not (tmp_path / "out").exists()


def test_clip_bound_wins_over_data(tmp_path):
    _clip_mlp(tmp_path / "m.onnx", relu_last=True)
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(1).random((64, 8), np.float32))
    r = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz")
    assert r.report["lambda"]["clip1"] == 1.0
    assert r.report["lambda"]["relu2"] != 1.0


@pytest.mark.parametrize("T", [4, 16])
def test_shift_bias_adds_half_a_step(tmp_path, T):
    from snnc.frontend import import_onnx
    from snnc.passes import PassContext
    from snnc.passmanager import parse_pipeline, run_passes

    _clip_mlp(tmp_path / "m.onnx")
    g0 = import_onnx(tmp_path / "m.onnx").graph
    base = run_passes(g0, parse_pipeline("fold-batchnorm,normalize{method=clip}"),
                      PassContext())
    shifted = run_passes(base, parse_pipeline(f"shift-bias{{timesteps={T}}}"), PassContext())
    assert "shift-bias" in shifted.facts
    x = np.random.default_rng(2).random((8, 8), np.float32)
    dense = [op.out for op in base.ops if isinstance(op, O.Dense)]
    a = network(base).run_ann({"x": x}, dense)
    b = network(shifted).run_ann({"x": x}, dense)
    # the first layer's input current grows by exactly 1/(2T)
    np.testing.assert_allclose(b[dense[0]] - a[dense[0]], 1.0 / (2 * T), rtol=1e-4)

    def biases(g):
        return [np.zeros(g.params[op.weight].shape[0]) if op.bias is None
                else g.params[op.bias]
                for op in g.ops if isinstance(op, O.Dense)]
    d = [sb - bb for sb, bb in zip(biases(shifted), biases(base))]
    np.testing.assert_allclose(np.concatenate(d[:2]), 1.0 / (2 * T), rtol=1e-5)
    assert not np.any(d[2])  # the output layer is not a neuron layer: unchanged
    r = compile_model(tmp_path / "m.onnx", None,
                      options=Options(norm="clip", shift_bias=True, timesteps=T))
    assert "shift-bias" in r.report["pipeline"]


def test_shift_bias_on_a_residual_join(tmp_path):
    from conftest import small_cnn

    onnx.save(small_cnn(4, residual=True), tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).random((16, 1, 12, 12),
                                                                    np.float32))
    r = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz",
                      options=Options(shift_bias=True, timesteps=8))
    shifts = [op for op in r.graph.ops if isinstance(op, O.Affine) and op.shift
              and np.all(r.graph.params[op.shift] == np.float32(1 / 16))]
    assert len(shifts) == 1  # the neuron after the Add gets an explicit shift
