"""Differential tests of the ONNX frontend: snnc's IR interpreter against onnxruntime.

Every ONNX op the frontend supports is run on tiny models built in code (tests/onnx_builders)
with several attribute combinations, and every output must match onnxruntime's to within
1e-4 of the output scale. Ops or attribute combinations the frontend rejects must be
reported: strict=False gives one "unsupported" row naming the node and its op type,
strict=True raises one SnncError naming every unsupported node.

Most models have a symbolic batch axis ("N", fed with a batch of 3); a few have a static
batch of 1.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx_builders import (
    bn_params,
    build_model,
    int64,
    positive,
    rng_for,
    run_both,
    run_ort,
    sample_input,
    single_node_model,
    small,
    weights,
)
from snnc import SnncError
from snnc.frontend import import_onnx

F32 = np.float32


def node(op: str, inputs: list[str], output: str, name: str | None = None,
         **attrs: Any) -> onnx.NodeProto:
    """One ONNX node, named after its output unless `name` is given."""
    return h.make_node(op, inputs, [output], name=name or output, **attrs)


def statuses(res: Any) -> dict[str, str]:
    """{node name: report status} of an import result."""
    return {r.name: r.status for r in res.report}


# ====================================================================== Conv ==============
# (id, C in, (H, W), C out, (kh, kw), attrs, bias)
CONV_CASES: list[tuple[str, int, tuple[int, int], int, tuple[int, int], dict, bool]] = [
    ("k3_pad1", 4, (8, 8), 6, (3, 3), {"pads": [1, 1, 1, 1]}, True),
    ("k3_nopad_nobias", 4, (8, 7), 6, (3, 3), {}, False),
    ("k3_asym_pads", 3, (7, 9), 5, (3, 3), {"pads": [0, 1, 2, 0]}, True),
    ("k3_asym_pads_stride2", 3, (9, 8), 5, (3, 3), {"pads": [2, 0, 1, 1], "strides": [2, 2]},
     True),
    ("k1x1", 6, (5, 5), 4, (1, 1), {}, True),
    ("k1x1_nobias", 6, (5, 4), 4, (1, 1), {}, False),
    ("k1x1_stride2", 6, (7, 7), 4, (1, 1), {"strides": [2, 2]}, True),
    ("k1x1_pad1", 3, (4, 4), 2, (1, 1), {"pads": [1, 1, 1, 1]}, True),
    ("k5_pad2_stride2", 3, (11, 10), 4, (5, 5), {"pads": [2, 2, 2, 2], "strides": [2, 2]},
     True),
    ("k5_nopad", 2, (9, 9), 3, (5, 5), {}, False),
    ("k3_stride2_odd", 3, (9, 9), 4, (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, True),
    ("k3_stride_2x1", 3, (8, 8), 4, (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 1]}, True),
    ("k3x1", 3, (8, 6), 4, (3, 1), {"pads": [1, 0, 1, 0]}, True),
    ("k1x3_stride2", 3, (6, 9), 4, (1, 3), {"strides": [2, 2]}, False),
    ("k3_dil2", 3, (10, 10), 4, (3, 3), {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, True),
    ("k3_dil2_stride2", 3, (11, 12), 4, (3, 3), {"dilations": [2, 2], "strides": [2, 2]},
     True),
    ("k3_dil_2x1", 3, (9, 8), 4, (3, 3), {"dilations": [2, 1], "pads": [2, 1, 2, 1]}, False),
    ("same_upper_s1", 3, (7, 8), 4, (3, 3), {"auto_pad": "SAME_UPPER"}, True),
    ("same_upper_s2_even", 3, (8, 8), 4, (3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
     True),
    ("same_upper_s2_odd", 3, (9, 7), 4, (5, 5), {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
     True),
    ("same_lower_s2", 3, (8, 8), 4, (3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
     True),
    ("same_lower_k2", 3, (6, 7), 4, (2, 2), {"auto_pad": "SAME_LOWER"}, True),
    ("same_upper_k2", 3, (6, 7), 4, (2, 2), {"auto_pad": "SAME_UPPER"}, False),
    ("valid_s2", 3, (9, 8), 4, (3, 3), {"auto_pad": "VALID", "strides": [2, 2]}, True),
    ("valid_k3x1", 3, (6, 6), 2, (3, 1), {"auto_pad": "VALID"}, False),
    ("groups2", 4, (6, 6), 6, (3, 3), {"group": 2, "pads": [1, 1, 1, 1]}, True),
    ("groups2_nobias_stride2_dil2", 4, (11, 10), 8, (3, 3),
     {"group": 2, "strides": [2, 2], "dilations": [2, 2]}, False),
    ("groups3_k1x1", 6, (5, 5), 3, (1, 1), {"group": 3}, True),
    ("depthwise", 4, (7, 7), 4, (3, 3), {"group": 4, "pads": [1, 1, 1, 1]}, True),
    ("depthwise_nobias_stride2", 4, (8, 9), 4, (3, 3),
     {"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}, False),
    ("depthwise_mult2", 3, (7, 7), 6, (3, 3), {"group": 3, "pads": [1, 1, 1, 1]}, True),
    ("depthwise_mult2_k5_same", 3, (8, 7), 6, (5, 5), {"group": 3, "auto_pad": "SAME_UPPER"},
     False),
    ("depthwise_k3x1_dil2", 4, (9, 6), 4, (3, 1), {"group": 4, "dilations": [2, 1]}, True),
    ("kernel_shape_attr", 3, (6, 6), 4, (3, 3), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
     True),
]


def conv_model(c: int, hw: tuple[int, int], o: int, k: tuple[int, int], attrs: dict,
               bias: bool, *, seed: int = 0, batch: int | str = "N") -> onnx.ModelProto:
    rng = rng_for(seed)
    group = attrs.get("group", 1)
    inits = {"w": weights(rng, (o, c // group, *k))}
    if bias:
        inits["b"] = small(rng, (o,))
    return single_node_model("Conv", (c, *hw), inits, attrs, batch=batch)


@pytest.mark.parametrize("c, hw, o, k, attrs, bias", [case[1:] for case in CONV_CASES],
                         ids=[case[0] for case in CONV_CASES])
def test_conv(c: int, hw: tuple[int, int], o: int, k: tuple[int, int], attrs: dict,
              bias: bool) -> None:
    cmp = run_both(conv_model(c, hw, o, k, attrs, bias))
    assert cmp.status("node") == "converted"


# ====================================================================== Gemm / MatMul =====
# (id, transB, alpha, beta, bias shape or None)
GEMM_CASES = [
    ("transB0", 0, 1.0, 1.0, (5,)),
    ("transB1", 1, 1.0, 1.0, (5,)),
    ("transB1_bias_1xM", 1, 1.0, 1.0, (1, 5)),
    ("transB0_bias_1xM", 0, 1.0, 1.0, (1, 5)),
    ("bias_scalar", 1, 1.0, 1.0, ()),
    ("bias_1elem", 0, 1.0, 1.0, (1,)),
    ("no_bias_transB1", 1, 1.0, 1.0, None),
    ("no_bias_transB0_alpha", 0, 0.5, 1.0, None),
    ("alpha_beta", 1, 0.5, 2.0, (5,)),
    ("alpha_beta_transB0_scalar", 0, -1.5, 0.25, ()),
    ("beta_only", 1, 1.0, -3.0, (1, 5)),
]


@pytest.mark.parametrize("trans_b, alpha, beta, bias_shape", [c[1:] for c in GEMM_CASES],
                         ids=[c[0] for c in GEMM_CASES])
def test_gemm(trans_b: int, alpha: float, beta: float, bias_shape: tuple | None) -> None:
    rng = rng_for(1)
    k, m = 12, 5
    inits = {"B": weights(rng, (m, k) if trans_b else (k, m), fan_in=k)}
    if bias_shape is not None:
        inits["C"] = small(rng, bias_shape)
    attrs = {"transB": trans_b, "alpha": alpha, "beta": beta}
    cmp = run_both(single_node_model("Gemm", (k,), inits, attrs))
    assert cmp.status("node") == "converted"


def test_gemm_trans_a_is_unsupported() -> None:
    rng = rng_for(2)
    # A = x (3, 12) transposed: the batch would end up on the second axis.
    model = single_node_model("Gemm", (12,), {"B": weights(rng, (3, 5))}, {"transA": 1},
                              batch=3)
    assert run_ort(model, sample_input(model))[0].shape == (12, 5)  # valid for onnxruntime
    rows = import_onnx(model, strict=False).unsupported
    assert [(r.name, r.op_type) for r in rows] == [("node", "Gemm")]
    with pytest.raises(SnncError, match=r"node \(Gemm\)"):
        import_onnx(model)


@pytest.mark.parametrize("bias", ["none", "M", "1xM"])
@pytest.mark.parametrize("in_shape", [(12,), (4, 12)], ids=["2d", "3d"])
def test_matmul_linear(bias: str, in_shape: tuple[int, ...]) -> None:
    """PyTorch's Linear export: MatMul by a constant (K, M) weight, then Add of a bias."""
    rng = rng_for(3)
    inits = {"W": weights(rng, (12, 5), fan_in=12)}
    nodes = [node("MatMul", ["x", "W"], "mm")]
    if bias != "none":
        inits["b"] = small(rng, (5,) if bias == "M" else (1, 5))
        nodes.append(node("Add", ["mm", "b"], "y"))
    cmp = run_both(build_model(nodes, in_shape, inits))
    assert all(s == "converted" for s in statuses(cmp.res).values())


# ====================================================================== arithmetic ========
ARITH_SHAPE = (3, 4, 5)
CONST_SHAPES = {"scalar": (), "per_channel": (3, 1, 1), "per_channel_4d": (1, 3, 1, 1),
                "per_sample": ARITH_SHAPE, "per_sample_4d": (1, *ARITH_SHAPE),
                "last_axis": (5,), "rows": (4, 1)}
ARITH_CASES = [(op, side, cname) for op in ("Add", "Sub", "Mul", "Div")
               for side in ("right", "left") for cname in CONST_SHAPES
               if not (op == "Div" and side == "left")]


@pytest.mark.parametrize("op, side, cname", ARITH_CASES,
                         ids=[f"{op}-const_{side}-{c}" for op, side, c in ARITH_CASES])
def test_arith_with_constant(op: str, side: str, cname: str) -> None:
    rng = rng_for(4)
    c = small(rng, CONST_SHAPES[cname], 1.0)
    if op == "Div":  # keep away from zero
        c = np.sign(c + 1e-3).astype(F32) * positive(rng, c.shape)
    inputs = ["x", "c"] if side == "right" else ["c", "x"]
    cmp = run_both(single_node_model(op, ARITH_SHAPE, {"c": c}, inputs=inputs))
    assert cmp.status("node") == "converted"


def two_conv_branches(rng: np.random.Generator, c: int = 3, o: int = 4
                      ) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """Two 3x3 convs (outputs "a" and "b") of the same input x (N, c, H, W)."""
    inits = {"wa": weights(rng, (o, c, 3, 3)), "ba": small(rng, (o,)),
             "wb": weights(rng, (o, c, 3, 3)), "bb": small(rng, (o,))}
    nodes = [node("Conv", ["x", "wa", "ba"], "a", pads=[1, 1, 1, 1]),
             node("Conv", ["x", "wb", "bb"], "b", pads=[1, 1, 1, 1])]
    return nodes, inits


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_join_of_two_branches(op: str) -> None:
    """A residual join: two convs of one input, then Add / Sub of the two."""
    nodes, inits = two_conv_branches(rng_for(5))
    nodes.append(node(op, ["a", "b"], "y"))
    cmp = run_both(build_model(nodes, (3, 6, 6), inits))
    assert cmp.status("y") == "converted"


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_join_with_the_input(op: str) -> None:
    """An identity shortcut: x joined with relu(conv(x))."""
    rng = rng_for(6)
    inits = {"w": weights(rng, (3, 3, 3, 3))}
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
             node(op, ["r", "x"], "y")]
    run_both(build_model(nodes, (3, 5, 5), inits))


@pytest.mark.parametrize("n_terms, with_const", [(2, False), (3, False), (2, True)],
                         ids=["sum2", "sum3", "sum2_plus_const"])
def test_sum(n_terms: int, with_const: bool) -> None:
    rng = rng_for(7)
    nodes, inits = two_conv_branches(rng)
    terms = ["a", "b"]
    if n_terms == 3:
        nodes.append(node("Relu", ["x"], "r"))
        inits["w1"] = weights(rng, (4, 3, 1, 1))
        nodes.append(node("Conv", ["r", "w1"], "c3"))
        terms.append("c3")
    if with_const:
        inits["k"] = small(rng, (4, 1, 1))
        terms.append("k")
    nodes.append(node("Sum", terms, "y"))
    cmp = run_both(build_model(nodes, (3, 6, 5), inits))
    assert cmp.status("y") == "converted"


# ====================================================================== Relu / Clip ========
@pytest.mark.parametrize("shape", [(3, 4, 5), (7,)], ids=["4d", "2d"])
def test_relu(shape: tuple[int, ...]) -> None:
    run_both(single_node_model("Relu", shape))


CLIP_BOUNDS = {"both": (-0.5, 0.8), "relu6": (0.0, 6.0), "only_max": (None, 0.3),
               "only_min": (-0.2, None), "none": (None, None)}


@pytest.mark.parametrize("bounds", list(CLIP_BOUNDS))
@pytest.mark.parametrize("opset", [9, 10, 11, 13])
def test_clip(opset: int, bounds: str) -> None:
    lo, hi = CLIP_BOUNDS[bounds]
    if opset < 11:  # Clip-6: bounds are attributes
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        model = single_node_model("Clip", (3, 4, 4), attrs=attrs, opset=opset)
    else:  # Clip-11/13: bounds are optional scalar inputs
        inits = {k: np.array(v, F32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        inputs = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
        while inputs[-1] == "":
            inputs.pop()
        model = single_node_model("Clip", (3, 4, 4), inits, opset=opset, inputs=inputs)
    x = sample_input(model) * F32(3)
    cmp = run_both(model, x)
    assert cmp.status("node") == "converted"
    if lo is not None or hi is not None:  # the bounds really were exercised
        ref = cmp.ort[0]
        assert not np.array_equal(ref, x)


# ====================================================================== BatchNormalization =
@pytest.mark.parametrize("epsilon", [1e-5, 1e-2], ids=["eps_default", "eps_1e-2"])
@pytest.mark.parametrize("opset", [9, 15])
@pytest.mark.parametrize("after", ["conv", "relu", "gemm"])
def test_batchnorm(after: str, opset: int, epsilon: float) -> None:
    rng = rng_for(8)
    c = 4
    inits = bn_params(rng, c)
    if after == "conv":
        inits |= {"w": weights(rng, (c, 3, 3, 3)), "b": small(rng, (c,))}
        first, shape = node("Conv", ["x", "w", "b"], "h", pads=[1, 1, 1, 1]), (3, 5, 5)
    elif after == "relu":
        first, shape = node("Relu", ["x"], "h"), (c, 5, 4)
    else:
        inits |= {"w": weights(rng, (c, 6)), "b": small(rng, (c,))}
        first, shape = node("Gemm", ["x", "w", "b"], "h", transB=1), (6,)
    attrs = {} if epsilon == 1e-5 else {"epsilon": epsilon}
    bn = node("BatchNormalization", ["h", "bn_scale", "bn_bias", "bn_mean", "bn_var"], "y",
              **attrs)
    cmp = run_both(build_model([first, bn], shape, inits, opset=opset))
    assert cmp.status("y") == "converted"


# ====================================================================== pooling ===========
POOL_SHAPE = (3, 9, 8)
# (id, attrs, opset)
MAXPOOL_CASES = [
    ("k2_s2", {"kernel_shape": [2, 2], "strides": [2, 2]}, 13),
    ("k2_s2_opset9", {"kernel_shape": [2, 2], "strides": [2, 2]}, 9),
    ("k3_s1", {"kernel_shape": [3, 3]}, 13),
    ("k3_s2_pad1", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 13),
    ("k3_s2_asym_pads", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0]}, 11),
    ("k2_s2_ceil", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, 10),
    ("k3_s2_ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, 13),
    ("k3_s2_pad1_ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                         "ceil_mode": 1}, 13),
    ("k3_s3_pad1_ceil", {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [1, 1, 1, 1],
                         "ceil_mode": 1}, 13),
    ("k2_s1_dil2", {"kernel_shape": [2, 2], "dilations": [2, 2]}, 10),
    ("k3_s2_dil2_pad2_ceil", {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2],
                              "pads": [2, 2, 2, 2], "ceil_mode": 1}, 13),
    ("k3x2_s_2x1", {"kernel_shape": [3, 2], "strides": [2, 1]}, 13),
    ("same_upper_k3_s2", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
     13),
    ("same_upper_k2_s1", {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}, 13),
    ("same_lower_k2_s1", {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"}, 13),
    ("valid_k3_s2", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}, 13),
]


@pytest.mark.parametrize("attrs, opset", [c[1:] for c in MAXPOOL_CASES],
                         ids=[c[0] for c in MAXPOOL_CASES])
def test_maxpool(attrs: dict, opset: int) -> None:
    cmp = run_both(single_node_model("MaxPool", POOL_SHAPE, attrs=attrs, opset=opset))
    assert cmp.status("node") == "converted"


AVGPOOL_CASES = [
    ("k2_s2", {"kernel_shape": [2, 2], "strides": [2, 2]}, 13),
    ("k2_s2_opset9", {"kernel_shape": [2, 2], "strides": [2, 2]}, 9),
    ("k3_s1_pad1_cip0", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 13),
    ("k3_s1_pad1_cip1", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                         "count_include_pad": 1}, 13),
    ("k3_s2_asym_pads_cip0", {"kernel_shape": [3, 3], "strides": [2, 2],
                              "pads": [0, 1, 2, 0]}, 13),
    ("k3_s2_asym_pads_cip1", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 2, 0],
                              "count_include_pad": 1}, 13),
    ("k2_s2_ceil_cip0", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, 10),
    ("k2_s2_ceil_cip1", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1,
                         "count_include_pad": 1}, 13),
    ("k3_s2_pad1_ceil_cip0", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                              "ceil_mode": 1}, 13),
    ("k3_s2_pad1_ceil_cip1", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                              "ceil_mode": 1, "count_include_pad": 1}, 13),
    ("k3x2_s_1x2", {"kernel_shape": [3, 2], "strides": [1, 2]}, 13),
    ("same_upper_k3_s2", {"kernel_shape": [3, 3], "strides": [2, 2],
                          "auto_pad": "SAME_UPPER"}, 13),
    ("same_upper_k3_s2_cip1", {"kernel_shape": [3, 3], "strides": [2, 2],
                               "auto_pad": "SAME_UPPER", "count_include_pad": 1}, 13),
    ("same_lower_k2_s1", {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"}, 13),
    ("valid_k3_s2", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}, 13),
]


@pytest.mark.parametrize("attrs, opset", [c[1:] for c in AVGPOOL_CASES],
                         ids=[c[0] for c in AVGPOOL_CASES])
def test_avgpool(attrs: dict, opset: int) -> None:
    cmp = run_both(single_node_model("AveragePool", POOL_SHAPE, attrs=attrs, opset=opset))
    assert cmp.status("node") == "converted"


@pytest.mark.parametrize("hw", [(5, 7), (1, 1)], ids=["5x7", "1x1"])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(op: str, hw: tuple[int, int]) -> None:
    cmp = run_both(single_node_model(op, (4, *hw)))
    assert cmp.ort[0].shape == (3, 4, 1, 1)


@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("opset, axes", [(13, [2, 3]), (13, [-1, -2]), (18, [2, 3])],
                         ids=["attr", "negative", "input"])
def test_reduce_mean_over_space_is_a_global_average_pool(opset: int, axes: list[int],
                                                         keepdims: int) -> None:
    """x.mean((2, 3)) in PyTorch: axes as an attribute (opset < 18) or an input."""
    if opset >= 18:
        model = single_node_model("ReduceMean", (4, 5, 3), {"axes": int64(axes)},
                                  attrs={"keepdims": keepdims}, opset=opset)
    else:
        model = single_node_model("ReduceMean", (4, 5, 3),
                                  attrs={"axes": axes, "keepdims": keepdims}, opset=opset)
    cmp = run_both(model)
    assert cmp.ort[0].shape == ((3, 4, 1, 1) if keepdims else (3, 4))


@pytest.mark.parametrize("axes", [[1], [3], [1, 2, 3]])
def test_reduce_mean_over_other_axes_is_refused(axes: list[int]) -> None:
    model = single_node_model("ReduceMean", (4, 5, 3), attrs={"axes": axes})
    res = import_onnx(model, strict=False)
    assert [(r.name, r.op_type) for r in res.unsupported] == [("node", "ReduceMean")]
    assert "spatial axes" in res.unsupported[0].detail


# ====================================================================== shape ops =========
@pytest.mark.parametrize("shape, axis", [((2, 3, 4), 1), ((2, 3, 4), -3), ((6,), 1),
                                         ((6,), -1)],
                         ids=["4d_axis1", "4d_axis-3", "2d_axis1", "2d_axis-1"])
def test_flatten(shape: tuple[int, ...], axis: int) -> None:
    cmp = run_both(single_node_model("Flatten", shape, attrs={"axis": axis}))
    assert cmp.status("node") == "converted"


RESHAPE_CASES = [
    ("zero_minus1", (2, 3, 4), [0, -1]),
    ("minus1_first", (32,), [-1, 8, 2, 2]),
    ("minus1_first_to_2d", (2, 3, 4), [-1, 24]),
    ("zero_4_minus1", (2, 3, 4), [0, 4, -1]),
    ("zero_zero_12", (2, 3, 4), [0, 0, 12]),
    ("unchanged", (2, 3, 4), [0, 2, 3, 4]),
    ("to_5d", (4, 3, 2), [0, 2, 2, 3, 2]),
]


@pytest.mark.parametrize("shape, target", [c[1:] for c in RESHAPE_CASES],
                         ids=[c[0] for c in RESHAPE_CASES])
def test_reshape_constant_shape(shape: tuple[int, ...], target: list[int]) -> None:
    """Reshape with a constant target that keeps the batch axis leading; a Relu first so
    that the reshaped tensor is computed."""
    nodes = [node("Relu", ["x"], "r"), node("Reshape", ["r", "shape"], "y")]
    cmp = run_both(build_model(nodes, shape, {"shape": int64(target)}))
    assert cmp.status("y") == "converted"


def view_batch_minus1_model(batch: int | str, opset: int = 13) -> onnx.ModelProto:
    """PyTorch's x.view(x.size(0), -1) after a conv: Shape->Gather->Unsqueeze->Concat->
    Reshape, then a Gemm."""
    rng = rng_for(9)
    inits = {"w": weights(rng, (4, 2, 3, 3)), "zero": np.array(0, np.int64),
             "minus1": int64([-1]), "fc": weights(rng, (5, 4 * 4 * 3))}
    unsq_attrs: dict[str, Any] = {}
    unsq_inputs = ["b"]
    if opset >= 13:
        inits["ax0"] = int64([0])
        unsq_inputs.append("ax0")
    else:
        unsq_attrs["axes"] = [0]
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
             node("Shape", ["c"], "s"),
             node("Gather", ["s", "zero"], "b", axis=0),
             node("Unsqueeze", unsq_inputs, "bu", **unsq_attrs),
             node("Concat", ["bu", "minus1"], "target", axis=0),
             node("Reshape", ["c", "target"], "flat"),
             node("Gemm", ["flat", "fc"], "y", transB=1)]
    return build_model(nodes, (2, 4, 3), inits, opset=opset, batch=batch,
                       output_shapes={"y": [batch, 5]})


@pytest.mark.parametrize("batch, opset", [
    (1, 13), (3, 13), (1, 11),
    ("N", 13), ("N", 11),
], ids=["batch1", "batch3", "batch1_opset11", "batchN", "batchN_opset11"])
def test_reshape_shape_chain(batch: int | str, opset: int) -> None:
    cmp = run_both(view_batch_minus1_model(batch, opset))
    st = statuses(cmp.res)
    assert [st[n] for n in ("s", "b", "bu", "target")] == ["folded"] * 4
    assert st["flat"] == "converted" and st["y"] == "converted"


@pytest.mark.parametrize("variant", ["opset13_axes_input", "opset11_axes_attr",
                                     "opset13_negative_axes", "opset13_squeeze_all"])
def test_squeeze_unsqueeze_after_global_pool(variant: str) -> None:
    """GlobalAveragePool -> Squeeze -> Gemm, and GlobalAveragePool -> Squeeze -> Unsqueeze
    (two outputs)."""
    rng = rng_for(10)
    opset = 11 if "opset11" in variant else 13
    sq_axes, unsq_axes = ([-1, -2], [-1, -2]) if "negative" in variant else ([2, 3], [2, 3])
    inits: dict[str, np.ndarray] = {"fc": weights(rng, (5, 4)), "fcb": small(rng, (5,))}
    sq_in, unsq_in = ["g"], ["s"]
    sq_attrs: dict[str, Any] = {}
    unsq_attrs: dict[str, Any] = {}
    if opset == 11:
        sq_attrs["axes"], unsq_attrs["axes"] = sq_axes, unsq_axes
    else:
        inits["unsq_axes"] = int64(unsq_axes)
        unsq_in.append("unsq_axes")
        if variant != "opset13_squeeze_all":
            inits["sq_axes"] = int64(sq_axes)
            sq_in.append("sq_axes")
    nodes = [node("GlobalAveragePool", ["x"], "g"), node("Squeeze", sq_in, "s", **sq_attrs),
             node("Gemm", ["s", "fc", "fcb"], "y", transB=1),
             node("Unsqueeze", unsq_in, "u", **unsq_attrs)]
    out_shapes = ({"y": ["N", 5], "u": ["N", 4, 1, 1]} if variant == "opset13_squeeze_all"
                  else None)
    model = build_model(nodes, (4, 3, 5), inits, ["y", "u"], opset=opset,
                        output_shapes=out_shapes)
    cmp = run_both(model)
    assert [o.shape for o in cmp.snnc] == [(3, 5), (3, 4, 1, 1)]


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_without_axes_static_batch_one(opset: int) -> None:
    model = build_model([node("GlobalAveragePool", ["x"], "g"), node("Squeeze", ["g"], "y")],
                        (4, 3, 3), opset=opset, batch=1)
    res = import_onnx(model, strict=False)
    if res.graph is None:  # refusing is a correct answer: the batch axis would vanish
        assert [(r.name, r.op_type) for r in res.unsupported] == [("y", "Squeeze")]
    else:
        run_both(model)


@pytest.mark.parametrize("axis, n_branches", [(1, 2), (-3, 2), (1, 3), (2, 2), (-1, 2)],
                         ids=["axis1", "axis-3", "axis1_three", "axis2_height",
                              "axis-1_width"])
def test_concat(axis: int, n_branches: int) -> None:
    rng = rng_for(11)
    nodes, inits = two_conv_branches(rng)
    parts = ["a", "b"]
    if n_branches == 3:
        nodes.append(node("MaxPool", ["x"], "p", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        parts.append("p")
    nodes.append(node("Concat", parts, "y", axis=axis))
    cmp = run_both(build_model(nodes, (3, 5, 6), inits))
    assert cmp.status("y") == "converted"


# (id, opset, form, per-sample pads (begin C,H,W then end C,H,W))
PAD_CASES = [
    ("opset11_input_hw", 11, "input", [0, 1, 2, 0, 2, 1]),
    ("opset13_input_hw_sym", 13, "input", [0, 1, 1, 0, 1, 1]),
    ("opset13_explicit_zero_value", 13, "input_value0", [0, 2, 0, 0, 0, 3]),
    ("opset13_channels", 13, "input", [1, 0, 0, 2, 0, 0]),
    ("opset18_axes_input", 18, "axes", [0, 1, 2, 0, 2, 1]),
    ("opset9_attr", 9, "attr", [0, 1, 2, 0, 2, 1]),
    ("opset10_attr_explicit_mode", 10, "attr_mode", [0, 0, 1, 0, 1, 0]),
]


def pad_model(opset: int, form: str, per_sample: list[int], *, mode: str = "constant",
              value: float = 0.0, batch_pads: tuple[int, int] = (0, 0)) -> onnx.ModelProto:
    """Relu -> Pad on a (N, 2, 4, 5) input; pads given per sample (C, H, W)."""
    full = [batch_pads[0], *per_sample[:3], batch_pads[1], *per_sample[3:]]
    inits: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    if form.startswith("attr"):
        attrs["pads"] = full
        if form == "attr_mode" or mode != "constant":
            attrs["mode"] = mode
        if value:
            attrs["value"] = value
        inputs = ["r"]
    elif form == "axes":
        inits = {"pads": int64(per_sample[1:3] + per_sample[4:6]), "axes": int64([2, 3])}
        inputs = ["r", "pads", "", "axes"]
        if mode != "constant":
            attrs["mode"] = mode
    else:
        inits = {"pads": int64(full)}
        inputs = ["r", "pads"]
        if form == "input_value0" or value:
            inits["value"] = np.array(value, F32)
            inputs.append("value")
        if mode != "constant":
            attrs["mode"] = mode
    nodes = [node("Relu", ["x"], "r"), node("Pad", inputs, "y", **attrs)]
    return build_model(nodes, (2, 4, 5), inits, opset=opset)


@pytest.mark.parametrize("opset, form, pads", [c[1:] for c in PAD_CASES],
                         ids=[c[0] for c in PAD_CASES])
def test_pad(opset: int, form: str, pads: list[int]) -> None:
    cmp = run_both(pad_model(opset, form, pads))
    assert cmp.status("y") == "converted"


def test_pad_then_conv() -> None:
    """Explicit zero padding before a pad-less conv (a common export pattern)."""
    rng = rng_for(12)
    nodes = [node("Pad", ["x", "pads"], "p"), node("Conv", ["p", "w"], "y")]
    inits = {"pads": int64([0, 0, 1, 1, 0, 0, 1, 1]), "w": weights(rng, (4, 3, 3, 3))}
    run_both(build_model(nodes, (3, 6, 6), inits))


# ====================================================================== Softmax ===========
# (id, opset, per-sample shape, axis or None for the default)
SOFTMAX_CASES = [
    ("opset11_NK_default", 11, (7,), None),
    ("opset11_NK_axis1", 11, (7,), 1),
    ("opset11_NK_axis-1", 11, (7,), -1),
    ("opset13_NK_default", 13, (7,), None),
    ("opset13_NK_axis1", 13, (7,), 1),
    ("opset11_NK11_axis1", 11, (7, 1, 1), 1),
    ("opset11_NCHW_axis1_flattened", 11, (3, 2, 2), 1),
    ("opset11_NCHW_axis2_flattened", 11, (3, 2, 2), 2),
    ("opset13_NK11_axis1", 13, (7, 1, 1), 1),
    ("opset13_NCHW_last_axis", 13, (3, 2, 4), None),
]


@pytest.mark.parametrize("opset, shape, axis", [c[1:] for c in SOFTMAX_CASES],
                         ids=[c[0] for c in SOFTMAX_CASES])
def test_softmax(opset: int, shape: tuple[int, ...], axis: int | None) -> None:
    attrs = {} if axis is None else {"axis": axis}
    model = single_node_model("Softmax", shape, attrs=attrs, opset=opset)
    cmp = run_both(model, sample_input(model) * F32(3))
    assert cmp.status("node") == "converted"


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_final_after_gemm(opset: int) -> None:
    rng = rng_for(13)
    inits = {"w": weights(rng, (6, 10)) * F32(3), "b": small(rng, (6,))}
    nodes = [node("Gemm", ["x", "w", "b"], "logits", transB=1),
             node("Softmax", ["logits"], "y", axis=1)]
    cmp = run_both(build_model(nodes, (10,), inits, opset=opset))
    np.testing.assert_allclose(cmp.snnc[0].sum(axis=1), 1.0, rtol=1e-5)


# ====================================================================== removed / folded ==
@pytest.mark.parametrize("opset", [9, 13])
def test_dropout_and_identity_are_removed(opset: int) -> None:
    rng = rng_for(14)
    inits = {"w": weights(rng, (4, 3, 3, 3))}
    if opset >= 12:
        inits["ratio"] = np.array(0.5, F32)
        drop = h.make_node("Dropout", ["c", "ratio"], ["d", "mask"], name="drop")
    else:
        drop = h.make_node("Dropout", ["c"], ["d", "mask"], name="drop", ratio=0.3)
    nodes = [node("Conv", ["x", "w"], "c"), drop, node("Identity", ["d"], "i", name="ident"),
             node("Relu", ["i"], "r"), node("Identity", ["r"], "y", name="ident_out")]
    cmp = run_both(build_model(nodes, (3, 6, 6), inits, opset=opset))
    st = statuses(cmp.res)
    assert (st["drop"], st["ident"], st["ident_out"]) == ("removed",) * 3
    assert [op.kind for op in cmp.res.graph.ops] == ["conv", "relu"]


def test_identity_of_the_input_is_an_output() -> None:
    """A graph output that is the graph input under an Identity (no IR op at all)."""
    nodes = [node("Identity", ["x"], "y", name="ident"), node("Relu", ["x"], "z")]
    cmp = run_both(build_model(nodes, (3, 4), outputs=["y", "z"]))
    assert cmp.status("ident") == "removed"


def test_graph_input_is_also_an_output() -> None:
    model = build_model([node("Relu", ["x"], "r")], (3, 4), outputs=["r", "x"],
                        output_shapes={"x": ["N", 3, 4]})
    cmp = run_both(model)
    assert cmp.res.graph.outputs[1] == "x"


def test_outputs_aliasing_one_value() -> None:
    model = build_model([node("Relu", ["x"], "r"), node("Identity", ["r"], "y")], (3, 4),
                        outputs=["r", "y"])
    run_both(model)


def test_dropout_in_training_mode_is_not_removed() -> None:
    inits = {"ratio": np.array(0.5, F32), "training": np.array(True)}
    model = build_model([node("Dropout", ["x", "ratio", "training"], "y")], (40,), inits)
    x = np.abs(sample_input(model)) + F32(1)
    assert (run_ort(model, x)[0] == 0).any()  # onnxruntime really drops (p(miss) = 2^-120)
    rows = import_onnx(model, strict=False).report
    assert [(r.name, r.status) for r in rows] == [("y", "unsupported")]


def test_initializers_listed_as_inputs() -> None:
    """IR version 3 (old exporters): every initializer is also a graph input."""
    rng = rng_for(28)
    w, b = weights(rng, (4, 3, 3, 3)), small(rng, (4,))
    graph = h.make_graph(
        [node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "y")],
        "ir3", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 5, 5]),
                h.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [4, 3, 3, 3]),
                h.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 5, 5])],
        [nh.from_array(w, "w"), nh.from_array(b, "b")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 9)], ir_version=3)
    onnx.checker.check_model(model, full_check=True)
    cmp = run_both(model)
    assert cmp.res.graph.inputs == ["x"]


def test_maxpool_with_unused_indices_output() -> None:
    mp = h.make_node("MaxPool", ["x"], ["y", "indices"], name="mp", kernel_shape=[2, 2],
                     strides=[2, 2])
    cmp = run_both(build_model([mp], (2, 6, 6)))
    assert cmp.status("mp") == "converted"


def test_constant_nodes_feed_weights() -> None:
    """Constant (tensor, value_float, value_ints) and ConstantOfShape nodes make the
    weights, the scale, the bias and the reshape target: all folded."""
    rng = rng_for(15)
    w = weights(rng, (4, 3, 3, 3))
    nodes = [h.make_node("Constant", [], ["w"], name="const_w", value=nh.from_array(w)),
             node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
             h.make_node("Constant", [], ["k"], name="const_k", value_float=0.75),
             node("Mul", ["c", "k"], "m"),
             h.make_node("Constant", [], ["bshape"], name="const_bshape",
                         value_ints=[4, 1, 1]),
             h.make_node("ConstantOfShape", ["bshape"], ["bias"], name="fill_bias",
                         value=nh.from_array(np.array([0.25], F32))),
             node("Add", ["m", "bias"], "a"),
             h.make_node("Constant", [], ["target"], name="const_target",
                         value=nh.from_array(int64([0, -1]))),
             node("Reshape", ["a", "target"], "y")]
    cmp = run_both(build_model(nodes, (3, 5, 5)))
    st = statuses(cmp.res)
    for name in ("const_w", "const_k", "const_bshape", "fill_bias", "const_target"):
        assert st[name] == "folded", name
    assert {st[n] for n in ("c", "m", "a", "y")} == {"converted"}


def test_constant_subgraph_is_folded() -> None:
    """Weight arithmetic on initializers (here W * 2 + 1 and a Transpose) is folded."""
    rng = rng_for(16)
    inits = {"wt": weights(rng, (12, 5), fan_in=12), "two": np.array(2.0, F32),
             "one": np.array(1.0, F32)}
    nodes = [node("Mul", ["wt", "two"], "w2"), node("Add", ["w2", "one"], "w3"),
             node("Transpose", ["w3"], "w", perm=[1, 0]),
             node("Gemm", ["x", "w"], "y", transB=1)]
    cmp = run_both(build_model(nodes, (12,), inits))
    assert [cmp.status(n) for n in ("w2", "w3", "w")] == ["folded"] * 3


# ====================================================================== opsets ============
def opset_model(opset: int, batch: int | str = "N") -> onnx.ModelProto:
    """Pad -> Conv -> BN -> Clip(0, 6) -> MaxPool -> Flatten -> Dropout -> Gemm -> Softmax
    on (N, 2, 8, 8), each node in the form its opset requires."""
    rng = rng_for(17)
    inits = {"w": weights(rng, (4, 2, 3, 3)), "b": small(rng, (4,)), **bn_params(rng, 4),
             "fc": weights(rng, (5, 64)), "fcb": small(rng, (5,))}
    pads = [0, 0, 1, 1, 0, 0, 1, 1]
    if opset < 11:
        pad = node("Pad", ["x"], "p", pads=pads)
        clip = node("Clip", ["bn"], "cl", min=0.0, max=6.0)
    else:
        inits |= {"pads": int64(pads), "lo": np.array(0, F32), "hi": np.array(6, F32)}
        pad = node("Pad", ["x", "pads"], "p")
        clip = node("Clip", ["bn", "lo", "hi"], "cl")
    if opset < 12:
        drop = node("Dropout", ["f"], "d", ratio=0.2)
    else:
        inits["ratio"] = np.array(0.2, F32)
        drop = node("Dropout", ["f", "ratio"], "d")
    nodes = [pad, node("Conv", ["p", "w", "b"], "c"),
             node("BatchNormalization", ["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                  "bn"),
             clip, node("MaxPool", ["cl"], "mp", kernel_shape=[2, 2], strides=[2, 2]),
             node("Flatten", ["mp"], "f"), drop,
             node("Gemm", ["d", "fc", "fcb"], "logits", transB=1),
             node("Softmax", ["logits"], "y", axis=1)]
    return build_model(nodes, (2, 8, 8), inits, opset=opset, batch=batch)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_opsets(opset: int) -> None:
    model = opset_model(opset)
    cmp = run_both(model, sample_input(model) * F32(2))
    assert statuses(cmp.res)["d"] == "removed"


# ====================================================================== whole models ======
def lenet(batch: int | str = "N") -> onnx.ModelProto:
    """Conv-Relu-MaxPool-Conv-Relu-AvgPool-Flatten-Gemm-Relu-Gemm-Softmax on (N,1,16,16)."""
    rng = rng_for(18)
    inits = {"c1w": weights(rng, (6, 1, 5, 5)), "c1b": small(rng, (6,), 0.1),
             "c2w": weights(rng, (12, 6, 5, 5)), "c2b": small(rng, (12,), 0.1),
             "f1w": weights(rng, (32, 12 * 2 * 2)), "f1b": small(rng, (32,), 0.1),
             "f2w": weights(rng, (10, 32)), "f2b": small(rng, (10,), 0.1)}
    nodes = [node("Conv", ["x", "c1w", "c1b"], "c1", pads=[2, 2, 2, 2]),
             node("Relu", ["c1"], "r1"),
             node("MaxPool", ["r1"], "p1", kernel_shape=[2, 2], strides=[2, 2]),
             node("Conv", ["p1", "c2w", "c2b"], "c2"),
             node("Relu", ["c2"], "r2"),
             node("AveragePool", ["r2"], "p2", kernel_shape=[2, 2], strides=[2, 2]),
             node("Flatten", ["p2"], "f"),
             node("Gemm", ["f", "f1w", "f1b"], "h1", transB=1),
             node("Relu", ["h1"], "r3"),
             node("Gemm", ["r3", "f2w", "f2b"], "logits", transB=1),
             node("Softmax", ["logits"], "y", axis=1)]
    return build_model(nodes, (1, 16, 16), inits, batch=batch)


def residual_block(batch: int | str = "N") -> onnx.ModelProto:
    """conv-bn-relu-conv-bn + identity -> relu, then a strided block with a 1x1-conv-bn
    projection shortcut, then GlobalAveragePool-Flatten-Gemm."""
    rng = rng_for(19)
    inits: dict[str, np.ndarray] = {}
    nodes: list[onnx.NodeProto] = []

    def conv_bn(x: str, out: str, c_in: int, c_out: int, k: int, stride: int) -> None:
        inits[f"{out}_w"] = weights(rng, (c_out, c_in, k, k))
        inits.update(bn_params(rng, c_out, out))
        p = k // 2
        nodes.append(node("Conv", [x, f"{out}_w"], f"{out}_c", pads=[p] * 4,
                          strides=[stride] * 2))
        nodes.append(node("BatchNormalization",
                          [f"{out}_c", f"{out}_scale", f"{out}_bias", f"{out}_mean",
                           f"{out}_var"], out))

    conv_bn("x", "stem", 3, 8, 3, 1)
    nodes.append(node("Relu", ["stem"], "s"))
    conv_bn("s", "a1", 8, 8, 3, 1)
    nodes.append(node("Relu", ["a1"], "a1r"))
    conv_bn("a1r", "a2", 8, 8, 3, 1)
    nodes += [node("Add", ["a2", "s"], "sum1"), node("Relu", ["sum1"], "out1")]
    conv_bn("out1", "b1", 8, 12, 3, 2)
    nodes.append(node("Relu", ["b1"], "b1r"))
    conv_bn("b1r", "b2", 12, 12, 3, 1)
    conv_bn("out1", "proj", 8, 12, 1, 2)
    nodes += [node("Add", ["b2", "proj"], "sum2"), node("Relu", ["sum2"], "out2"),
              node("GlobalAveragePool", ["out2"], "gap"), node("Flatten", ["gap"], "f")]
    inits |= {"fc": weights(rng, (10, 12)), "fcb": small(rng, (10,))}
    nodes.append(node("Gemm", ["f", "fc", "fcb"], "y", transB=1))
    return build_model(nodes, (3, 8, 8), inits, batch=batch)


def inception_block(batch: int | str = "N") -> onnx.ModelProto:
    """Four branches (1x1; 1x1-3x3; 1x1-5x5; maxpool-1x1) concatenated on channels, twice
    (the second time with axis=-3), then AveragePool and a Gemm."""
    rng = rng_for(20)
    inits: dict[str, np.ndarray] = {}
    nodes: list[onnx.NodeProto] = []

    def conv_relu(x: str, out: str, c_in: int, c_out: int, k: int) -> str:
        inits[f"{out}_w"] = weights(rng, (c_out, c_in, k, k))
        inits[f"{out}_b"] = small(rng, (c_out,), 0.1)
        nodes.append(node("Conv", [x, f"{out}_w", f"{out}_b"], f"{out}_c",
                          pads=[k // 2] * 4))
        nodes.append(node("Relu", [f"{out}_c"], out))
        return out

    def block(x: str, tag: str, c_in: int, axis: int) -> str:
        b1 = conv_relu(x, f"{tag}_b1", c_in, 4, 1)
        b2 = conv_relu(conv_relu(x, f"{tag}_b2r", c_in, 3, 1), f"{tag}_b2", 3, 4, 3)
        b3 = conv_relu(conv_relu(x, f"{tag}_b3r", c_in, 2, 1), f"{tag}_b3", 2, 3, 5)
        nodes.append(node("MaxPool", [x], f"{tag}_mp", kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1]))
        b4 = conv_relu(f"{tag}_mp", f"{tag}_b4", c_in, 3, 1)
        nodes.append(node("Concat", [b1, b2, b3, b4], f"{tag}_cat", axis=axis))
        return f"{tag}_cat"

    out = block(block("x", "i1", 3, 1), "i2", 14, -3)
    inits |= {"fc": weights(rng, (6, 14 * 3 * 3)), "fcb": small(rng, (6,))}
    nodes += [node("AveragePool", [out], "ap", kernel_shape=[3, 3], strides=[3, 3]),
              node("Flatten", ["ap"], "f"), node("Gemm", ["f", "fc", "fcb"], "y", transB=1)]
    return build_model(nodes, (3, 9, 9), inits, batch=batch)


WHOLE_MODELS: dict[str, Callable[..., onnx.ModelProto]] = {
    "lenet": lenet, "residual_bn": residual_block, "inception": inception_block}


@pytest.mark.parametrize("batch", ["N", 1])
@pytest.mark.parametrize("name", list(WHOLE_MODELS))
def test_whole_model(name: str, batch: int | str) -> None:
    model = WHOLE_MODELS[name](batch)
    cmp = run_both(model)
    assert all(r.status in ("converted", "folded", "removed") for r in cmp.res.report)
    assert len(cmp.res.report) == len(model.graph.node)


def test_outputs_come_in_onnx_order() -> None:
    """Three outputs listed in an order other than the computation order."""
    rng = rng_for(21)
    inits = {"w": weights(rng, (4, 2, 3, 3)), "fc": weights(rng, (3, 4))}
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
             node("GlobalMaxPool", ["r"], "g"), node("Flatten", ["g"], "f"),
             node("Gemm", ["f", "fc"], "logits", transB=1)]
    model = build_model(nodes, (2, 5, 5), inits, outputs=["logits", "c", "f"])
    cmp = run_both(model)
    assert [o.shape for o in cmp.snnc] == [(3, 3), (3, 4, 5, 5), (3, 4)]


# ====================================================================== static batch 1 ====
STATIC_BATCH_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv_same_upper": lambda: conv_model(3, (7, 8), 4, (3, 3),
                                          {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
                                          True, batch=1),
    "depthwise_mult2": lambda: conv_model(3, (7, 7), 6, (3, 3),
                                          {"group": 3, "pads": [1, 1, 1, 1]}, True, batch=1),
    "gemm": lambda: single_node_model("Gemm", (12,), {"B": weights(rng_for(22), (5, 12)),
                                                      "C": small(rng_for(23), (5,))},
                                      {"transB": 1, "alpha": 0.5}, batch=1),
    "maxpool_ceil": lambda: single_node_model(
        "MaxPool", POOL_SHAPE, attrs={"kernel_shape": [3, 3], "strides": [2, 2],
                                      "ceil_mode": 1}, batch=1),
    "avgpool_pad_cip1": lambda: single_node_model(
        "AveragePool", POOL_SHAPE, attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                          "count_include_pad": 1}, batch=1),
    "reshape_1_minus1": lambda: build_model(
        [node("Relu", ["x"], "r"), node("Reshape", ["r", "shape"], "y")], (2, 3, 4),
        {"shape": int64([1, -1])}, batch=1),
    "softmax_opset11_axis1": lambda: single_node_model("Softmax", (7, 1, 1),
                                                       attrs={"axis": 1}, opset=11, batch=1),
    "opset9_pipeline": lambda: opset_model(9, batch=1),
    "opset17_pipeline": lambda: opset_model(17, batch=1),
}


@pytest.mark.parametrize("name", list(STATIC_BATCH_MODELS))
def test_static_batch_one(name: str) -> None:
    model = STATIC_BATCH_MODELS[name]()
    assert sample_input(model).shape[0] == 1
    run_both(model)


# ====================================================================== unsupported =======
def _two_computed_matmul() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("MatMul", ["x", "r"], "y")], (4, 4))


def _const_left_matmul() -> onnx.ModelProto:
    return build_model([node("MatMul", ["W", "x"], "y")], (4, 5),
                       {"W": weights(rng_for(24), (3, 4))})


def _computed_product() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Mul", ["x", "r"], "y")], (3, 4))


def _const_div_by_tensor() -> onnx.ModelProto:
    return single_node_model("Div", (3, 4), {"c": positive(rng_for(25), (3, 4))},
                             inputs=["c", "x"])


def _broadcasting_join() -> onnx.ModelProto:
    return build_model([node("GlobalAveragePool", ["x"], "g"), node("Add", ["x", "g"], "y")],
                       (3, 4, 4))


def _batch_varying_const() -> onnx.ModelProto:
    return single_node_model("Add", (2, 3), {"c": small(rng_for(26), (3, 2, 3))}, batch=3)


def _concat_axis0() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Concat", ["x", "r"], "y", axis=0)],
                       (3, 4))


def _reshape_moving_batch() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Reshape", ["r", "shape"], "y")],
                       (2, 3, 4), {"shape": int64([-1, 12])})


def _concat_with_constant() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Concat", ["r", "k"], "y", axis=1)],
                       (3, 4), {"k": small(rng_for(29), (1, 2, 4))}, batch=1)


def _unsqueeze_axis0() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Unsqueeze", ["r", "ax"], "y")],
                       (3, 4), {"ax": int64([0])})


def _conv_computed_weight() -> onnx.ModelProto:
    return build_model([node("Relu", ["x"], "r"), node("Conv", ["x", "r"], "y")],
                       (1, 1, 1), batch=1)


UNSUPPORTED_MODELS: dict[str, tuple[Callable[[], onnx.ModelProto], str, str]] = {
    # id: (model, unsupported node name, its op type)
    "matmul_two_computed": (_two_computed_matmul, "y", "MatMul"),
    "matmul_const_left": (_const_left_matmul, "y", "MatMul"),
    "mul_two_computed": (_computed_product, "y", "Mul"),
    "div_const_by_tensor": (_const_div_by_tensor, "node", "Div"),
    "add_broadcasting_tensors": (_broadcasting_join, "y", "Add"),
    "add_const_varying_over_batch": (_batch_varying_const, "node", "Add"),
    "flatten_axis0": (lambda: single_node_model("Flatten", (3, 4), attrs={"axis": 0}),
                      "node", "Flatten"),
    "flatten_axis2": (lambda: single_node_model("Flatten", (3, 4), attrs={"axis": 2}),
                      "node", "Flatten"),
    "concat_axis0": (_concat_axis0, "y", "Concat"),
    "reshape_moves_batch": (_reshape_moving_batch, "y", "Reshape"),
    "pad_reflect": (lambda: pad_model(13, "input", [0, 1, 1, 0, 1, 1], mode="reflect"),
                    "y", "Pad"),
    "pad_edge_opset9": (lambda: pad_model(9, "attr", [0, 1, 1, 0, 1, 1], mode="edge"),
                        "y", "Pad"),
    "pad_nonzero_value": (lambda: pad_model(13, "input", [0, 1, 1, 0, 1, 1], value=1.5),
                          "y", "Pad"),
    "pad_nonzero_value_opset9": (lambda: pad_model(9, "attr", [0, 1, 1, 0, 1, 1], value=-2.0),
                                 "y", "Pad"),
    "pad_batch_axis": (lambda: pad_model(13, "input", [0, 1, 1, 0, 1, 1], batch_pads=(1, 0)),
                       "y", "Pad"),
    "concat_with_constant": (_concat_with_constant, "y", "Concat"),
    "unsqueeze_axis0": (_unsqueeze_axis0, "y", "Unsqueeze"),
    "conv_computed_weight": (_conv_computed_weight, "y", "Conv"),
    "avgpool_dilations_opset19": (lambda: single_node_model(
        "AveragePool", (2, 6, 6), attrs={"kernel_shape": [2, 2], "dilations": [2, 2]},
        opset=19), "node", "AveragePool"),
    "softmax_axis0": (lambda: single_node_model("Softmax", (5,), attrs={"axis": 0}),
                      "node", "Softmax"),
    "softmax_opset13_axis1_nchw": (lambda: single_node_model("Softmax", (3, 2, 2),
                                                             attrs={"axis": 1}),
                                   "node", "Softmax"),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED_MODELS))
def test_unsupported_is_reported(case: str) -> None:
    make, bad_node, op_type = UNSUPPORTED_MODELS[case]
    model = make()
    run_ort(model, sample_input(model))  # a valid model onnxruntime runs
    res = import_onnx(model, strict=False)
    assert res.graph is None
    assert [(r.name, r.op_type) for r in res.unsupported] == [(bad_node, op_type)]
    assert res.unsupported[0].detail
    with pytest.raises(SnncError) as err:
        import_onnx(model)
    assert f"{bad_node} ({op_type})" in str(err.value)


def lrn_transpose_model(chained: bool) -> onnx.ModelProto:
    """A conv whose output goes to an LRN and a Transpose: both as graph outputs, or
    chained conv -> LRN -> Relu -> Transpose -> Relu."""
    rng = rng_for(27)
    inits = {"w": weights(rng, (4, 3, 3, 3))}
    conv = node("Conv", ["x", "w"], "c", name="conv1")
    if chained:
        nodes = [conv, node("LRN", ["c"], "n", name="norm_lrn_7", size=3),
                 node("Relu", ["n"], "r", name="relu_after_lrn"),
                 node("Transpose", ["r"], "t", name="perm_T_3", perm=[0, 1, 3, 2]),
                 node("Relu", ["t"], "y", name="relu_after_transpose")]
        outputs = ["y"]
    else:
        nodes = [conv, node("Relu", ["c"], "r", name="relu1"),
                 node("LRN", ["r"], "n", name="norm_lrn_7", size=3),
                 node("Transpose", ["r"], "t", name="perm_T_3", perm=[0, 1, 3, 2])]
        outputs = ["n", "t", "r"]
    return build_model(nodes, (3, 6, 5), inits, outputs)


@pytest.mark.parametrize("chained", [False, True], ids=["parallel", "chained"])
def test_unsupported_ops_are_all_listed(chained: bool) -> None:
    model = lrn_transpose_model(chained)
    run_ort(model, sample_input(model))
    res = import_onnx(model, strict=False)
    assert res.graph is None
    # every node has exactly one row, in model order
    assert [r.name for r in res.report] == [n.name for n in model.graph.node]
    rows = {r.name: r for r in res.unsupported}
    assert rows["norm_lrn_7"].op_type == "LRN" and rows["norm_lrn_7"].detail
    assert rows["perm_T_3"].op_type == "Transpose" and rows["perm_T_3"].detail
    if chained:  # nodes downstream of an unsupported node are reported too, never dropped
        assert set(rows) == {"norm_lrn_7", "relu_after_lrn", "perm_T_3",
                             "relu_after_transpose"}
        assert "norm_lrn_7" in rows["relu_after_lrn"].detail
    else:
        assert set(rows) == {"norm_lrn_7", "perm_T_3"}
        assert statuses(res)["relu1"] == "converted"
    with pytest.raises(SnncError) as err:
        import_onnx(model, strict=True)
    for name in rows:
        assert name in str(err.value)
    # the headline counts the nodes without a conversion, not those merely downstream
    assert str(err.value).count("2 unsupported node(s)") == 1
    if chained:
        assert "2 node(s) after them, not checked" in str(err.value)
