"""Channel-wise threshold balancing (`--norm channel:P`, METHODS 2, Kim et al. 2020).

Differential: the normalized ANN must still match onnxruntime on the source model (outputs
are restored to scale 1), and every neuron's output must have its per-channel statistic
at 1 on the calibration data, through Conv groups, pooling, Pad, Flatten/Reshape,
residual Add and Concat.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES, small_cnn
from helpers import ort_run, rel_err
from onnx import helper as h
from onnx_builders import bn_params, build_model, int64, small, weights
from snnc.backends.sim import interpret, network, runtime
from snnc.calibration import OnnxCalibration
from snnc.driver import Options, ann_accuracy, compile_model
from snnc.frontend import import_model
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.passes import PassContext
from snnc.passes.normalize import is_neuron, parse_method, robust_max
from snnc.passmanager import parse_pipeline, run_passes

PREFIX = "fold-batchnorm,fold-affine,relu-before-maxpool,"


def _n(op, ins, out, **kw):
    return h.make_node(op, ins, [out], name=out, **kw)


def pool_chain(seed=0):
    """conv-bn-relu-maxpool-pad-conv-relu-avgpool-flatten-dense on (2, 12, 12)."""
    r = np.random.default_rng(seed)
    init = {"w1": weights(r, (6, 2, 3, 3)), "b1": small(r, (6,), .2),
            **bn_params(r, 6), "pads": int64([0, 0, 1, 1, 0, 0, 1, 1]),
            "w2": weights(r, (8, 6, 3, 3)), "b2": small(r, (8,), .2),
            "w3": weights(r, (10, 72)), "b3": small(r, (10,), .1)}
    nodes = [_n("Conv", ["x", "w1", "b1"], "c1", pads=[1, 1, 1, 1]),
             _n("BatchNormalization", ["c1", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                "bn1"),
             _n("Relu", ["bn1"], "r1"),
             _n("MaxPool", ["r1"], "p1", kernel_shape=[2, 2], strides=[2, 2]),
             _n("Pad", ["p1", "pads"], "pd"),
             _n("Conv", ["pd", "w2", "b2"], "c2"),
             _n("Relu", ["c2"], "r2"),
             _n("AveragePool", ["r2"], "p2", kernel_shape=[2, 2], strides=[2, 2]),
             _n("Flatten", ["p2"], "f"),
             _n("Gemm", ["f", "w3", "b3"], "y", transB=1)]
    return build_model(nodes, (2, 12, 12), init)


def grouped(seed=0):
    """conv, grouped conv (6->12, groups 3), depthwise (12->12) and depthwise with
    channel multiplier 2 (12->24), each + relu, maxpool, flatten, dense."""
    r = np.random.default_rng(seed)
    init = {"w1": weights(r, (6, 2, 3, 3)), "b1": small(r, (6,), .2),
            "w2": weights(r, (12, 2, 3, 3)), "b2": small(r, (12,), .2),
            "w3": weights(r, (12, 1, 3, 3)) * r.uniform(.2, 3, (12, 1, 1, 1)),
            "b3": small(r, (12,), .2),
            "w4": weights(r, (24, 1, 3, 3)), "b4": small(r, (24,), .2),
            "w5": weights(r, (5, 24 * 25)), "b5": small(r, (5,), .1)}
    init["w3"] = init["w3"].astype(np.float32)
    nodes = [_n("Conv", ["x", "w1", "b1"], "c1", pads=[1, 1, 1, 1]), _n("Relu", ["c1"], "r1"),
             _n("Conv", ["r1", "w2", "b2"], "c2", pads=[1, 1, 1, 1], group=3),
             _n("Relu", ["c2"], "r2"),
             _n("Conv", ["r2", "w3", "b3"], "c3", pads=[1, 1, 1, 1], group=12),
             _n("Relu", ["c3"], "r3"),
             _n("Conv", ["r3", "w4", "b4"], "c4", pads=[1, 1, 1, 1], group=12),
             _n("Relu", ["c4"], "r4"),
             _n("MaxPool", ["r4"], "p4", kernel_shape=[2, 2], strides=[2, 2]),
             _n("Flatten", ["p4"], "f"), _n("Gemm", ["f", "w5", "b5"], "y", transB=1)]
    return build_model(nodes, (2, 10, 10), init)


def residual(seed=0):
    """Two residual joins: conv output + spikes, and spikes + spikes (both need one
    scale per channel), then global average pool and dense."""
    r = np.random.default_rng(seed)
    init = {f"w{i}": weights(r, (6, 3 if i == 1 else 6, 3, 3)) for i in (1, 2, 3, 5)}
    init.update({f"b{i}": small(r, (6,), .2) for i in (1, 2, 3, 5)})
    init.update({"w6": weights(r, (4, 6)), "b6": small(r, (4,), .1)})
    nodes = [_n("Conv", ["x", "w1", "b1"], "c1", pads=[1, 1, 1, 1]), _n("Relu", ["c1"], "r1"),
             _n("Conv", ["r1", "w2", "b2"], "c2", pads=[1, 1, 1, 1]), _n("Relu", ["c2"], "r2"),
             _n("Conv", ["r2", "w3", "b3"], "c3", pads=[1, 1, 1, 1]),
             _n("Add", ["c3", "r1"], "s3"), _n("Relu", ["s3"], "r4"),
             _n("Conv", ["r4", "w5", "b5"], "c5", pads=[1, 1, 1, 1]), _n("Relu", ["c5"], "r5"),
             _n("Add", ["r5", "r4"], "s5"), _n("Relu", ["s5"], "r6"),
             _n("GlobalAveragePool", ["r6"], "g"), _n("Flatten", ["g"], "f"),
             _n("Gemm", ["f", "w6", "b6"], "y", transB=1)]
    return build_model(nodes, (3, 8, 8), init)


def concat(seed=0):
    """Concat along channels of spikes, pooled spikes and a plain conv output; then a
    Concat of two conv outputs feeding a neuron (each branch absorbs its slice)."""
    r = np.random.default_rng(seed)
    init = {"wa": weights(r, (4, 1, 3, 3)), "wb": weights(r, (3, 1, 1, 1)) * 3,
            "wc": weights(r, (2, 1, 3, 3)), "wd": weights(r, (5, 9, 3, 3)),
            "we": weights(r, (3, 5, 1, 1)), "wf": weights(r, (4, 5, 3, 3)),
            "wg": weights(r, (6, 7 * 100))}
    init = {k: np.asarray(v, np.float32) for k, v in init.items()}
    nodes = [_n("Conv", ["x", "wa"], "a"), _n("Relu", ["a"], "ra"),
             _n("Conv", ["x", "wb"], "b"), _n("Relu", ["b"], "rb0"),
             _n("MaxPool", ["rb0"], "rb", kernel_shape=[3, 3]),
             _n("Conv", ["x", "wc"], "c"),
             _n("Concat", ["ra", "rb", "c"], "cat", axis=1),
             _n("Conv", ["cat", "wd"], "d"), _n("Relu", ["d"], "rd"),
             _n("Conv", ["rd", "we"], "e", pads=[1, 1, 1, 1]),
             _n("Conv", ["rd", "wf"], "f2", pads=[2, 2, 2, 2]),
             _n("Concat", ["e", "f2"], "cat2", axis=1), _n("Relu", ["cat2"], "rc"),
             _n("Flatten", ["rc"], "fl"), _n("Gemm", ["fl", "wg"], "y", transB=1)]
    return build_model(nodes, (1, 12, 12), init)


def flatten_relu(seed=0):
    """conv -> flatten -> relu (per-feature lambdas), dense -> relu -> reshape to
    (C, H, W) -> maxpool (a spatially varying scale) -> conv -> relu -> dense, and
    dense -> relu -> reshape -> conv (the conv cannot carry the scale either)."""
    r = np.random.default_rng(seed)
    init = {"w1": weights(r, (4, 2, 3, 3)), "b1": small(r, (4,), .2),
            "w2": weights(r, (32, 64)), "b2": small(r, (32,), .2),
            "shape": int64([-1, 2, 4, 4]),
            "w3": weights(r, (3, 2, 3, 3)), "b3": small(r, (3,), .2),
            "w4": weights(r, (32, 27)), "b4": small(r, (32,), .2),
            "w5": weights(r, (3, 2, 3, 3)), "b5": small(r, (3,), .2),
            "w6": weights(r, (5, 48)), "b6": small(r, (5,), .1)}
    nodes = [_n("Conv", ["x", "w1", "b1"], "c1"), _n("Flatten", ["c1"], "f1"),
             _n("Relu", ["f1"], "r1"),
             _n("Gemm", ["r1", "w2", "b2"], "d2", transB=1), _n("Relu", ["d2"], "r2"),
             _n("Reshape", ["r2", "shape"], "s2"),
             _n("MaxPool", ["s2"], "p2", kernel_shape=[2, 2], strides=[1, 1]),
             _n("Conv", ["p2", "w3", "b3"], "c3", pads=[1, 1, 1, 1]), _n("Relu", ["c3"], "r3"),
             _n("Flatten", ["r3"], "f3"),
             _n("Gemm", ["f3", "w4", "b4"], "d4", transB=1), _n("Relu", ["d4"], "r4"),
             _n("Reshape", ["r4", "shape"], "s4"),
             _n("Conv", ["s4", "w5", "b5"], "c5", pads=[1, 1, 1, 1]), _n("Relu", ["c5"], "r5"),
             _n("Flatten", ["r5"], "f5"), _n("Gemm", ["f5", "w6", "b6"], "y", transB=1)]
    return build_model(nodes, (2, 6, 6), init)


MODELS = {"pool-chain": pool_chain, "grouped": grouped, "residual": residual,
          "concat": concat, "flatten-relu": flatten_relu,
          "small-cnn-residual": lambda: small_cnn(3, residual=True)}
#: models where every scale change is absorbed by the weights (no rescaling edge at all)
NO_RESCALE = {"pool-chain", "grouped", "concat"}


def normalized(model, x, method):
    res = import_model(model)
    ctx = PassContext(calibration=OnnxCalibration(res.model, x))
    g = run_passes(res.graph, parse_pipeline(PREFIX + f"normalize{{method={method}}}"), ctx)
    return g, ctx


def _check_channel_statistic(g, x, pct):
    """Every neuron's output: per channel (axis 0 of the per-sample value), the statistic
    of its positive calibration activations is 1."""
    neurons = [op.out for op in g.ops if is_neuron(op)]
    assert neurons
    acts = interpret(g, {"x": x}, outputs=neurons)
    for name, a in acts.items():
        rows = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
        active = 0
        for c, row in enumerate(rows):
            pos = row[row > 0].astype(np.float64)
            if pos.size:
                active += 1
                stat = pos.max() if pct >= 100 else np.percentile(pos, pct)
                assert stat == pytest.approx(1.0, abs=1e-4), (name, c)
        assert active, name


@pytest.mark.parametrize("method", ["channel", "channel:97"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_channel_norm_preserves_the_ann_and_balances_every_channel(name, method, rng):
    model = MODELS[name]()
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])
    x = rng.random((48, *shape), dtype=np.float32)
    g, ctx = normalized(model, x, method)
    x_test = rng.random((8, *shape), dtype=np.float32)
    for xs in (x, x_test):
        got = list(interpret(g, {"x": xs}).values())
        for a, b in zip(got, ort_run(model, xs)):
            assert rel_err(a, b) <= 1e-4, name
    _check_channel_statistic(g, x, parse_method(method).percentile)
    # one lambda per channel of every neuron layer, recorded JSON-serialisably
    lam = ctx.notes["lambda"]
    assert lam == g.meta["lambda"] and json.loads(json.dumps(lam)) == lam
    for op in g.ops:
        if is_neuron(op):
            assert isinstance(lam[op.name], list)
            assert len(lam[op.name]) == g.shape(op.out)[0]
    rescales = [op for op in g.ops if isinstance(op, O.Affine)]
    if name in NO_RESCALE:
        assert not rescales, [op.name for op in rescales]


def test_residual_join_rescales_to_the_consuming_neuron(rng):
    model = residual()
    x = rng.random((32, 3, 8, 8), dtype=np.float32)
    g, ctx = normalized(model, x, "channel:99")
    prod = g.producers()
    adds = [op for op in g.ops if isinstance(op, O.Add)]
    assert len(adds) == 2
    # the spikes + spikes join: both edges carry a per-channel rescale
    aff = [prod[v] for v in adds[1].xs if isinstance(prod.get(v), O.Affine)]
    assert aff and all(g.params[a.scale].shape == (6, 1, 1) for a in aff)


def test_grouped_conv_weights_follow_the_group_channel_map(rng):
    """W[o, j] * lambda_in[(o // (O/groups)) * (C/groups) + j] / lambda_out[o]."""
    model = grouped()
    x = rng.random((32, 2, 10, 10), dtype=np.float32)
    g, ctx = normalized(model, x, "channel")
    lam = ctx.notes["lambda"]
    ref = {n.name: n for n in import_model(model).graph.ops}
    convs = [op for op in g.ops if isinstance(op, O.Conv)]
    relus = [op.name for op in g.ops if isinstance(op, O.Relu)]
    for conv, prev, cur in zip(convs[1:], relus, relus[1:]):
        w0 = import_model(model).graph.params[ref[conv.origin].weight].astype(np.float64)
        o, cg = w0.shape[:2]
        groups = conv.groups
        li, lo = np.array(lam[prev]), np.array(lam[cur])
        ch = (np.arange(o) // (o // groups))[:, None] * cg + np.arange(cg)[None, :]
        want = w0 * (li[ch] / lo[:, None])[:, :, None, None]
        np.testing.assert_allclose(g.params[conv.weight], want, rtol=1e-6)


def test_channel_100_is_per_channel_max_norm(rng):
    r = np.random.default_rng(3)
    model = build_model([_n("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]),
                         _n("Relu", ["c"], "y")], (3, 9, 9),
                        {"w": weights(r, (7, 3, 3, 3)) * r.uniform(.1, 5, (7, 1, 1, 1)),
                         "b": small(r, (7,), .3)})
    x = rng.random((20, 3, 9, 9), dtype=np.float32)
    g, ctx = normalized(model, x, "channel:100")
    relu = next(op for op in g.ops if isinstance(op, O.Relu))
    a = interpret(g, {"x": x}, outputs=[relu.out])[relu.out]
    np.testing.assert_allclose(a.max(axis=(0, 2, 3)), 1.0, rtol=1e-6)
    ann = ort_run(model, x)[0]
    np.testing.assert_allclose(ctx.notes["lambda"][relu.name], ann.max(axis=(0, 2, 3)),
                               rtol=1e-6)
    assert rel_err(list(interpret(g, {"x": x}).values())[0], ann) <= 1e-5


def test_silent_channel_gets_the_layer_lambda(rng):
    r = np.random.default_rng(4)
    w, b = weights(r, (4, 1, 3, 3)), small(r, (4,), .1)
    b[2] = -100.0  # channel 2 never fires
    conv = _n("Conv", ["x", "w", "b"], "c")
    model = build_model([conv, _n("Relu", ["c"], "rl"), _n("Flatten", ["rl"], "f"),
                         _n("Gemm", ["f", "w2"], "y", transB=1)],
                        (1, 5, 5), {"w": w, "b": b, "w2": weights(r, (3, 36))})
    x = rng.random((16, 1, 5, 5), dtype=np.float32)
    g, ctx = normalized(model, x, "channel")
    pre = ort_run(build_model([conv], (1, 5, 5), {"w": w, "b": b}), x)[0]
    lam = ctx.notes["lambda"]["rl"]
    assert lam[2] == pytest.approx(robust_max(pre, 99.9))
    assert lam[0] == pytest.approx(robust_max(pre[:, 0], 99.9))
    assert rel_err(list(interpret(g, {"x": x}).values())[0], ort_run(model, x)[0]) <= 1e-4


def test_scalar_modes_record_one_lambda_per_layer(rng):
    model = pool_chain()
    x = rng.random((16, 2, 12, 12), dtype=np.float32)
    for method in ("max", "percentile:99.9"):
        g, ctx = normalized(model, x, method)
        assert all(isinstance(v, float) for v in ctx.notes["lambda"].values())
        assert all(g.params[op.scale].size == 1 for op in g.ops if isinstance(op, O.Affine))


@pytest.mark.parametrize("spec,want", [("channel", (99.9, True)), ("channel:99.99",
                                                                    (99.99, True)),
                                       ("channel:100", (100.0, True)),
                                       ("percentile:99", (99.0, False)),
                                       ("max", (100.0, False)), ("clip", (99.9, False)),
                                       ("mse:8", (100.0, False, 8)),
                                       ("channel-mse:16", (100.0, True, 16))])
def test_parse_method(spec, want):
    assert tuple(parse_method(spec)) == (*want, 0)[:3]


@pytest.mark.parametrize("spec", ["channel:0", "channel:abc", "channel:", "channel:101",
                                  "channel:-5", "channel:nan", "channels", "percentile",
                                  "percentile:0", "mse:0", "mse:", "mse:8.5", "mse:-1",
                                  "channel-mse:x"])
def test_bad_channel_specs_are_user_errors(spec):
    with pytest.raises(SnncError) as e:
        parse_method(spec)
    assert spec in str(e.value)
    assert all(f in e.value.hint for f in ("max", "percentile:P", "channel:P", "clip"))
    with pytest.raises(SnncError):
        Options(norm=spec).validate()


@pytest.mark.slow
def test_channel_norm_compiles_and_converts_mnist(tmp_path, mnist):
    res = compile_model(EXAMPLES / "mnist_cnn.onnx", tmp_path / "out",
                        calib=EXAMPLES / "mnist_calib.npz",
                        options=Options(norm="channel:99.9"))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["lambda"] == res.report["lambda"]
    assert all(isinstance(v, list) for v in report["lambda"].values())
    x, y = mnist["x"][:200], mnist["y"][:200]
    ann = ann_accuracy(res.imported.model, x, y)
    snn = runtime.evaluate(network(res.graph), x, y, [32])["snn"][0]["accuracy"]
    assert snn >= ann - 0.02, (snn, ann)


def test_mse_scale_trades_clipping_for_a_finer_step_at_short_t():
    """Activations mostly small with a long tail: at T=4 the least-error lambda sits well
    below the maximum (and below p99.9), at T=4096 it is (nearly) the maximum; the chosen
    lambda's code error is no larger than the max's or p99.9's."""
    from snnc.passes.normalize import mse_scale

    a = np.random.default_rng(0).exponential(1.0, 200_000)

    def err(lam, t):
        q = lam * np.clip(np.floor(a * t / lam + 0.5), 0, t) / t
        return np.mean((a - q) ** 2)

    short, long_ = mse_scale(a, 4), mse_scale(a, 4096)
    assert short < robust_max(a, 99.9) < long_ <= a.max()
    assert err(short, 4) <= min(err(a.max(), 4), err(robust_max(a, 99.9), 4))
    assert mse_scale(np.zeros(10), 4) == 0.0
