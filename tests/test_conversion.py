"""Conversion: SNN rates converge to the normalized ANN activations as T grows, accuracy
on real MNIST data, encodings, readouts, and the standalone artifact."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.backends.sim import interpret, network, runtime
from snnc.calibration import OnnxCalibration
from snnc.driver import Options, ann_accuracy, compile_model
from snnc.frontend import import_onnx, load_model
from snnc.ir import ops as O
from snnc.passes import PassContext
from snnc.passmanager import parse_pipeline, run_passes

MODEL = EXAMPLES / "mnist_cnn.onnx"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, mnist):
    out = tmp_path_factory.mktemp("snn") / "out"
    compile_model(MODEL, out, calib=EXAMPLES / "mnist_calib.npz")
    return out


def test_rates_converge_to_ann_activations(compiled, mnist):
    """Per layer, mean |rate(t) - clip(a/lambda, 0, 1)| shrinks as t grows."""
    x = mnist["x"][:40]
    res = import_onnx(MODEL)
    ctx = PassContext(calibration=OnnxCalibration(res.model, mnist["calib"]))
    ann = run_passes(res.graph, parse_pipeline(
        "fold-batchnorm,fold-affine,relu-before-maxpool,normalize"), ctx)
    neurons = [op.out for op in ann.ops if isinstance(op, O.Relu)]
    assert neurons
    target = {k: np.clip(v, 0, 1) for k, v in
              interpret(ann, {ann.inputs[0]: x}, outputs=neurons).items()}
    net = runtime.Network.load(str(compiled))
    names = {op["name"]: op["out"] for op in net.ops if op["kind"] == "if"}
    counts = {v: np.zeros_like(target[v]) for v in names.values()}
    checkpoints = {16: {}, 64: {}, 256: {}}

    def record(op_name, t0, chunk):
        v = names[op_name]
        for i in range(len(chunk)):
            counts[v] += chunk[i]
            t = t0 + i + 1
            if t in checkpoints:
                checkpoints[t][v] = float(np.abs(counts[v] / t - target[v]).mean())

    net.simulate(x, 256, record=record)
    for v in names.values():
        e = [checkpoints[t][v] for t in (16, 64, 256)]
        assert e[0] > e[1] > e[2], (v, e)
        assert e[2] < 0.01, (v, e)


@pytest.mark.slow
def test_accuracy_on_mnist_test_split(compiled, mnist):
    x, y = mnist["x"], mnist["y"]
    ann = ann_accuracy(load_model(MODEL), x, y)
    res = runtime.evaluate(runtime.Network.load(str(compiled)), x, y, [32, 128])
    acc = {r["timesteps"]: r["accuracy"] for r in res["snn"]}
    assert ann > 0.97
    assert acc[128] >= ann - 0.01, (ann, acc)
    assert acc[32] >= ann - 0.03, (ann, acc)


def _split_run(net, x, steps, split):
    """Outputs and every spike source's per-step spikes, simulated as the batches
    x[:split], x[split:] (global sample indices kept)."""
    outs, spikes = [], {}
    for lo, hi in ((0, split), (split, len(x))):
        if lo == hi:
            continue
        got: dict[str, list] = {}
        tr = net.simulate(x[lo:hi], steps, sample_offset=lo,
                          record=lambda name, t0, c, got=got: got.setdefault(name, []).append(
                              np.array(c)))
        outs.append(tr["output"])
        for k, v in got.items():
            spikes.setdefault(k, []).append(np.concatenate(v))
    return (np.concatenate(outs, axis=1),
            {k: np.concatenate(v, axis=1) for k, v in spikes.items()})


@pytest.mark.parametrize("arith", ["float", "fixed"])
def test_determinism_contract(tmp_path, mnist, arith):
    """The README's contract. Same input, flags and batch: identical outputs. Across batch
    splits: Poisson input spikes (a pure function of seed, sample, step, neuron) and, in
    fixed point, everything are identical; float32 readouts agree within rtol 1e-4 (BLAS
    sums a batch of 12 in another order than 5 + 7, which may move a spike where a
    membrane sits on its threshold). A different seed gives different input spikes."""
    out = tmp_path / "p"
    compile_model(MODEL, out, calib=EXAMPLES / "mnist_calib.npz",
                  options=Options(input_coding="poisson", seed=7, arith=arith))
    net = runtime.Network.load(str(out))
    x = mnist["x"][:12]
    whole, spikes = _split_run(net, x, 20, 12)
    again, spikes_again = _split_run(net, x, 20, 12)
    np.testing.assert_array_equal(whole, again)
    for k in spikes:
        np.testing.assert_array_equal(spikes[k], spikes_again[k])
    halves, spikes_halves = _split_run(net, x, 20, 5)
    enc = next(op["name"] for op in net.ops if op["kind"] == "encode")
    np.testing.assert_array_equal(spikes[enc], spikes_halves[enc])
    if arith == "fixed":
        np.testing.assert_array_equal(whole, halves)
        for k in spikes:
            np.testing.assert_array_equal(spikes[k], spikes_halves[k])
    else:
        scale = float(np.abs(whole).max())
        np.testing.assert_allclose(halves, whole, rtol=1e-4, atol=1e-4 * scale)
    other = tmp_path / "q"
    compile_model(MODEL, other, calib=EXAMPLES / "mnist_calib.npz",
                  options=Options(input_coding="poisson", seed=8, arith=arith))
    _, spikes_other = _split_run(runtime.Network.load(str(other)), x, 20, 12)
    assert not np.array_equal(spikes[enc], spikes_other[enc])


def test_poisson_rate_matches_intensity():
    u = runtime.poisson_uniform(3, np.arange(50), 0, 2000)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01
    u2 = runtime.poisson_uniform(3, np.arange(50), 1, 2000)
    assert abs(float(np.corrcoef(u.ravel(), u2.ravel())[0, 1])) < 0.02


@pytest.mark.parametrize("opts", [Options(readout="spikes"), Options(reset="zero"),
                                  Options(v_init=0.5), Options(norm="max")],
                         ids=["spike-readout", "reset-zero", "v-init", "max-norm"])
def test_options_convert_and_classify(tmp_path, mnist, opts):
    out = tmp_path / "o"
    compile_model(MODEL, out, calib=EXAMPLES / "mnist_calib.npz", options=opts)
    x, y = mnist["x"][:200], mnist["y"][:200]
    res = runtime.evaluate(runtime.Network.load(str(out)), x, y, [64])
    assert res["snn"][0]["accuracy"] > 0.9


def test_reset_modes_differ(tmp_path):
    """Reset to zero loses the surplus charge: with the same input it fires less."""
    import onnx
    from conftest import small_cnn

    m = small_cnn(1, softmax=False)
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((20, 1, 12, 12), dtype=np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    spikes = {}
    for reset in ("subtract", "zero"):
        r = compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz",
                          options=Options(reset=reset))
        tr = network(r.graph).simulate(x, 32)
        spikes[reset] = sum(v.sum() for v in tr["spikes"].values())
    assert spikes["zero"] < spikes["subtract"]


def test_artifact_runs_with_numpy_alone(compiled, tmp_path, mnist):
    """OUT/ holds the runtime and the semantics module it loads; together they need
    numpy and the standard library only, and run from a copy of OUT elsewhere."""
    for f in ("snn_runtime.py", "snn_semantics.py"):
        imported = set()
        for node in ast.walk(ast.parse((compiled / f).read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        # `snnc` only inside the package (runtime._semantics), never in the standalone run
        assert imported <= set(sys.stdlib_module_names) | {"numpy", "snnc"}, (f, imported)
    copy = tmp_path / "copy"
    shutil.copytree(compiled, copy)
    np.savez(tmp_path / "d.npz", x=mnist["x"][:50], y=mnist["y"][:50])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: isolated (no user site, no cwd on sys.path); -S: no site-packages but numpy's
    site_pkgs = os.path.dirname(os.path.dirname(np.__file__))
    code = ("import sys; sys.path[:0] = [sys.argv.pop(1)]; sys.modules['snnc'] = None; "
            "import runpy; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code, site_pkgs,
                        str(copy / "snn_runtime.py"), str(copy),
                        "--data", str(tmp_path / "d.npz"), "--timesteps", "16,32"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "T=   32 accuracy=" in r.stdout
    lib = runtime.evaluate(runtime.Network.load(str(compiled)), mnist["x"][:50],
                           mnist["y"][:50], [32])["snn"][0]
    assert f"accuracy={lib['accuracy']:.4f}" in r.stdout.splitlines()[-1]


def test_maxpool_after_batchnorm_names_the_op_in_the_way(tmp_path):
    """ReLU -> BatchNorm -> MaxPool: the max-pool sees analog values; the error names the
    BatchNorm (not 'place the ReLU before', which it already is)."""
    import onnx
    from onnx import helper as h
    from onnx_builders import bn_params, build_model, weights
    from snnc import SnncError

    r = np.random.default_rng(0)
    bn = bn_params(r, 3)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("BatchNormalization", ["r", *bn], ["n"], name="bn"),
             h.make_node("MaxPool", ["n"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w2"], ["y"], transB=1, name="fc")]
    model = build_model(nodes, (1, 6, 6), {"w": weights(r, (3, 1, 3, 3)), **bn,
                                           "w2": weights(r, (4, 27))})
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=r.uniform(0, 1, (8, 1, 6, 6)).astype(np.float32))
    with pytest.raises(SnncError) as err:
        compile_model(tmp_path / "m.onnx", None, calib=tmp_path / "c.npz")
    assert "'bn'" in str(err.value) and "pool" in str(err.value)
