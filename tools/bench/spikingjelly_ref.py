"""SpikingJelly reference: SJ 2.0's ANN->SNN conversion on the exact networks snnc converts.

For every benchmark model (``build/models/<model>.onnx``, trained by tools/train_mnist.py)
this script

1. rebuilds the PyTorch architecture with tools/train_mnist.py's ``build_<model>()``
   (imported by path) and copies the weights out of the ONNX initializers, matched by graph
   structure: the parametric ONNX nodes (Conv, Gemm, BatchNormalization) in graph order
   against the torch Conv2d/Linear/BatchNorm2d modules in execution order (FX trace), with
   op kind, shapes and attributes checked (names are not used; constant-folded exports
   name initializers generically). BN epsilon is taken from the ONNX node.
2. refuses to go on unless the torch module reproduces onnxruntime's output on the whole
   test set to max abs diff < 1e-4 (and, for models ending in Softmax, also the
   pre-Softmax logits, read as an extra ORT output). SJ gets the logits module:
   cnn_bn_max's Softmax exists only in the export (``nn.Sequential(model, Softmax)``),
   and summing per-step Softmax outputs would not be SJ's usual readout.
3. converts it with SpikingJelly's ``ann2snn.Converter`` (= ``FXConverter``) for each
   recipe below, calibrating on ``build/models/mnist_calib.npz`` (500 train images) fed
   as a list of batches of ``--calib-batch`` images (default 100, like SJ's own MNIST
   example ``ann2snn/examples/cnn_mnist.py``), and
4. simulates the converted net on ``build/models/mnist_test.npz`` (1000 images) the way
   SJ's example ``val()`` does: ``functional.reset_net`` per batch, the analog image fed
   as input current at every step (no Poisson coding), the per-step network outputs
   summed over time, accuracy = argmax of the running sum, read at each T checkpoint of
   one ``max(T)``-step run (default T = 8, 16, 32, 64, 128, 256; batch 100, 2 threads).

How SJ 2.0 converts (``spikingjelly/activation_based/ann2snn/recipes/``): it FX-traces the
ANN, fuses Conv+BN, puts a calibration hook after every module whose type *is exactly*
``nn.ReLU``, runs the calibration batches, and replaces each ReLU by
``VoltageScaler(1/s) -> IFNode(v_threshold=1, soft reset) -> VoltageScaler(s)`` where ``s``
is the calibrated activation scale (a per-channel vector for the channel-wise recipes).
Other layers stay analog ops applied to (scaled) spikes; in particular ``MaxPool2d`` is a
max over the spike maps of one step. Nothing else is an activation: ``nn.Hardtanh``,
``nn.ReLU6``, ``F.relu`` and ``torch.clamp`` are not converted, and the step-mode adapter
SJ runs at the end rejects them (``torch.clamp``: "does not support function node"). So
``cnn_clip`` (``ClampReLU`` = ``torch.clamp(x, 0, 1)``, ONNX Clip) cannot be converted as
is; it is reported as an error. As a second, clearly labelled variant,
``cnn_clip[clamp->relu]`` replaces every ClampReLU by ``nn.ReLU`` (a *different* ANN: no
upper clip; its own ANN accuracy is reported, measured with torch).

Calibration statistics are SJ's, not snnc's: the layer-wise hook computes the statistic
(max or percentile over *all* ReLU outputs of the batch, zeros included) per batch and
keeps an exponential moving average over batches (momentum 0.1, first batch taken as is).

Recipes (``--recipes``, default all):

* ``max``: ``RateCodingRecipe(mode="max")``, layer-wise max-norm.
* ``99.9%``: ``RateCodingRecipe(mode="99.9%")``, layer-wise robust norm (99.9th percentile).
* ``1/2``: ``RateCodingRecipe(mode=0.5)``, layer-wise 0.5 x max (SJ's float mode, 0 < m <= 1).
* ``cw-99.9%``: ``RateCodingRecipe(mode="99.9%", channel_wise=True)``: per-channel
  (per-neuron for Linear layers) 99.9th percentile thresholds, ``ChannelVoltageScaler``.
* ``cw-99.9%-half``: as ``cw-99.9%`` plus ``half_threshold=True`` (``HalfThresholdIFNode``:
  membrane starts at v_threshold/2) and ``pre_spike_maxpool=True`` (a ``ReLU -> MaxPool2d``
  pair becomes ``MaxPool2d`` on the membrane input, then the neuron; only cnn_bn_max has one).
* ``ltb``: ``LocalThresholdBalancingRecipe`` (Bu et al., CVPR 2025): per-channel thresholds
  that start at 0 and grow once per calibration batch,
  ``theta_c += 2 * mean over (N, H, W) of max(relu(x) - theta_c, 0)``, while the hook
  already clips the activation at ``theta_c`` for the layers after it (so the result
  depends on the number of calibration batches); ``HalfThresholdIFNode``; a
  ``ReLU -> MaxPool2d`` pair gets the MaxPool before the neuron as in ``cw-99.9%-half``.

Spikes per sample count every IFNode output spike (forward hooks on SJ ``BaseNode``
modules) up to each checkpoint, averaged over the test set.

Output: a markdown table on stdout and JSON at ``--json`` (default
build/bench/spikingjelly.json)::

    {"<model>": {"<recipe>": {"<T>": accuracy, ...} | null, ...}, ...,
     "ann_accuracy": {"<model>": accuracy, ...},
     "spikes_per_sample": {"<model>": {"<recipe>": {"<T>": spikes, ...}}},
     "if_neurons": {"<model>": {"<recipe>": neurons per sample}},
     "errors": {"<model>": {"<recipe>": "conversion error message"}},
     "config": {...}}

Accuracies are fractions in [0, 1]; a recipe SJ cannot convert maps to ``null`` (message
in ``errors``). ANN accuracy is onnxruntime's on the ONNX file (torch's for the
``[clamp->relu]`` variant). ``run(models, timesteps)`` returns the same dict with int T
keys (JSON turns them into strings). Everything is deterministic (fixed seeds,
deterministic torch algorithms, fixed data order; SJ's conversion has no randomness).

Needs ``pip install --no-deps spikingjelly`` (2.0; never let pip pull a CUDA torch). SJ
imports ``loguru`` only for its package logger, which SJ disables; if loguru is not
installed a no-op stand-in is used.

    python tools/bench/spikingjelly_ref.py [--models mlp,cnn_avg,...] [--recipes max,99.9%]
        [--timesteps 8,16,32,64,128,256] [--json PATH] [--batch 100] [--calib-batch 100]
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import re
import sys
import time
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "build" / "models"
TRAIN_SCRIPT = ROOT / "tools" / "train_mnist.py"
DEFAULT_JSON = ROOT / "build" / "bench" / "spikingjelly.json"
MODELS = ["mlp", "cnn_avg", "cnn_bn_max", "cnn_clip", "resnet"]
STEPS = [8, 16, 32, 64, 128, 256]
RELU_VARIANT = "cnn_clip[clamp->relu]"
NUM_THREADS = 2
SEED = 0
MAX_ABS_DIFF = 1e-4
BATCH = 100
CALIB_BATCH = 100

# name -> (keyword arguments of the SJ recipe class, class name)
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    "max": ("RateCodingRecipe", {"mode": "max"}),
    "99.9%": ("RateCodingRecipe", {"mode": "99.9%"}),
    "1/2": ("RateCodingRecipe", {"mode": 0.5}),
    "cw-99.9%": ("RateCodingRecipe", {"mode": "99.9%", "channel_wise": True}),
    "cw-99.9%-half": ("RateCodingRecipe", {"mode": "99.9%", "channel_wise": True,
                                           "half_threshold": True,
                                           "pre_spike_maxpool": True}),
    "ltb": ("LocalThresholdBalancingRecipe", {}),
}


# ------------------------------------------------------------------------------ imports


def import_torch():
    import torch

    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    return torch


def import_spikingjelly() -> types.SimpleNamespace:
    """SJ's ann2snn, neuron and functional modules, or a clear error."""
    import_torch()
    # torch warns once per process that Triton is missing when SJ registers its kernels
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    try:
        import loguru  # noqa: F401
    except ImportError:  # SJ only uses loguru for its own (disabled) package logger
        stub = types.ModuleType("loguru")

        class _NoLog:
            def __getattr__(self, _name: str) -> Callable[..., None]:
                return lambda *a, **k: None

        stub.logger = _NoLog()  # type: ignore[attr-defined]
        sys.modules["loguru"] = stub
    try:
        import spikingjelly
        from spikingjelly.activation_based import ann2snn, functional, neuron
    except ImportError as exc:
        raise SystemExit(
            f"spikingjelly_ref: error: cannot import spikingjelly ({exc}); install it with "
            "`pip install --no-deps spikingjelly` (no deps: keeps the CPU torch)") from exc
    from spikingjelly.activation_based.ann2snn.recipes import (
        local_threshold_balancing,
        rate_coding,
    )

    for mod in (rate_coding, local_threshold_balancing):  # silence SJ's calibration bars
        if hasattr(mod, "tqdm"):
            mod.tqdm = lambda iterable, *a, **k: iterable
    version = getattr(spikingjelly, "__version__", None)
    if version is None:
        from importlib.metadata import version as _v

        version = _v("spikingjelly")
    return types.SimpleNamespace(ann2snn=ann2snn, functional=functional, neuron=neuron,
                                 version=version)


def import_train_mnist() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("snnc_train_mnist", TRAIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ ONNX -> torch weights


def _onnx_constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    return consts


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_onnx_weights(module, onnx_path: Path) -> None:
    """Copy the ONNX model's parameters into ``module`` (same architecture), matched by
    structure: parametric ONNX nodes in graph order vs torch modules in execution order."""
    import onnx
    import torch
    from torch import fx, nn

    graph = onnx.load(str(onnx_path)).graph
    consts = _onnx_constants(graph)
    onnx_nodes = [n for n in graph.node
                  if n.op_type in ("Conv", "Gemm", "MatMul", "BatchNormalization")]
    gm = fx.symbolic_trace(module)
    named = dict(module.named_modules())
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    torch_mods = [(n.target, named[n.target]) for n in gm.graph.nodes
                  if n.op == "call_module" and isinstance(named[n.target], kinds)]
    where = f"{onnx_path.name}"
    if len(onnx_nodes) != len(torch_mods):
        raise RuntimeError(
            f"{where}: {len(onnx_nodes)} parametric ONNX nodes "
            f"({[n.op_type for n in onnx_nodes]}) vs {len(torch_mods)} torch modules "
            f"({[type(m).__name__ for _, m in torch_mods]}); cannot map by structure")

    def const(node, i: int, what: str) -> np.ndarray:
        if len(node.input) <= i or not node.input[i]:
            raise RuntimeError(f"{where}: node {node.name!r} has no {what}")
        if node.input[i] not in consts:
            raise RuntimeError(f"{where}: node {node.name!r}: {what} is not a constant")
        return consts[node.input[i]]

    def put(param: torch.Tensor, value: np.ndarray, what: str) -> None:
        if tuple(param.shape) != value.shape:
            raise RuntimeError(f"{where}: {what}: torch shape {tuple(param.shape)} vs "
                               f"ONNX {value.shape}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.array(value, dtype=np.float32)))

    for node, (name, mod) in zip(onnx_nodes, torch_mods):
        a = _attrs(node)
        what = f"{node.op_type} {node.name or node.output[0]!r} -> torch {name!r}"
        if isinstance(mod, nn.Conv2d) and node.op_type == "Conv":
            checks = {"strides": list(mod.stride), "dilations": list(mod.dilation),
                      "group": mod.groups}
            for key, want in checks.items():
                if key in a and a[key] != want:
                    raise RuntimeError(f"{where}: {what}: {key} {a[key]} vs {want}")
            if "pads" in a and list(a["pads"]) != list(mod.padding) * 2:
                raise RuntimeError(f"{where}: {what}: pads {a['pads']} vs {mod.padding}")
            put(mod.weight, const(node, 1, "weight"), what + " weight")
            has_bias = len(node.input) > 2 and bool(node.input[2])
            if has_bias != (mod.bias is not None):
                raise RuntimeError(f"{where}: {what}: bias presence differs")
            if has_bias:
                put(mod.bias, const(node, 2, "bias"), what + " bias")
        elif isinstance(mod, nn.Linear) and node.op_type == "Gemm":
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
                raise RuntimeError(f"{where}: {what}: alpha/beta/transA not supported")
            w = const(node, 1, "weight")
            put(mod.weight, w if a.get("transB", 0) else w.T, what + " weight")
            has_bias = len(node.input) > 2 and bool(node.input[2])
            if has_bias != (mod.bias is not None):
                raise RuntimeError(f"{where}: {what}: bias presence differs")
            if has_bias:
                put(mod.bias, np.broadcast_to(const(node, 2, "bias"), mod.bias.shape),
                    what + " bias")
        elif isinstance(mod, nn.BatchNorm2d) and node.op_type == "BatchNormalization":
            put(mod.weight, const(node, 1, "scale"), what + " scale")
            put(mod.bias, const(node, 2, "B"), what + " B")
            put(mod.running_mean, const(node, 3, "mean"), what + " mean")
            put(mod.running_var, const(node, 4, "var"), what + " var")
            mod.eps = float(a.get("epsilon", 1e-5))
        else:
            raise RuntimeError(f"{where}: {what}: op kinds do not correspond")
    module.eval()


def _ort_outputs(onnx_path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(graph output, pre-Softmax logits if the graph ends in Softmax else None)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    out_name = proto.graph.output[0].name
    producer = {o: n for n in proto.graph.node for o in n.output}[out_name]
    logits_name = producer.input[0] if producer.op_type == "Softmax" else None
    if logits_name is not None:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(logits_name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = NUM_THREADS
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    res = sess.run(None, {proto.graph.input[0].name: x})
    return res[0], (res[1] if logits_name is not None else None)


def torch_model_from_onnx(name: str, train_mnist: types.ModuleType,
                          x_test: np.ndarray, y_test: np.ndarray):
    """(logits torch module with the ONNX weights, ORT accuracy, max abs diff)."""
    import torch
    from torch import nn

    onnx_path = MODELS_DIR / f"{name}.onnx"
    model = getattr(train_mnist, f"build_{name}")()
    load_onnx_weights(model, onnx_path)
    got, got_logits = _ort_outputs(onnx_path, x_test)
    with torch.no_grad():
        logits = model(torch.from_numpy(x_test)).numpy()
    want = torch.softmax(torch.from_numpy(logits), 1).numpy() if got_logits is not None \
        else logits
    diff = float(np.abs(got - want).max())
    if got_logits is not None:
        diff = max(diff, float(np.abs(got_logits - logits).max()))
    if not diff < MAX_ABS_DIFF:
        raise RuntimeError(f"{name}: torch module does not reproduce {onnx_path.name} "
                           f"(max abs diff {diff:.3g} >= {MAX_ABS_DIFF}); refusing to benchmark")
    assert isinstance(model, nn.Module)
    return model, float((got.argmax(1) == y_test).mean()), diff


def clamp_to_relu(model):
    """Copy of ``model`` with every ClampReLU (clamp(x, 0, 1)) replaced by nn.ReLU."""
    from torch import nn

    out = copy.deepcopy(model)
    for parent in out.modules():
        for child_name, child in list(parent.named_children()):
            if type(child).__name__ == "ClampReLU":
                setattr(parent, child_name, nn.ReLU())
    return out


# ---------------------------------------------------------------------------- simulation


def convert(sj: types.SimpleNamespace, ann, recipe: str, calib: list):
    cls_name, kwargs = RECIPES[recipe]
    recipe_obj = getattr(sj.ann2snn, cls_name)(dataloader=calib, **kwargs)
    snn = sj.ann2snn.Converter(recipe=recipe_obj, device="cpu").convert(copy.deepcopy(ann))
    return snn.eval()


def simulate(sj: types.SimpleNamespace, snn, x: np.ndarray, y: np.ndarray,
             steps: list[int], batch: int) -> tuple[dict[int, float], dict[int, float], int]:
    """(accuracy per T, spikes per sample per T, spiking neurons per sample)."""
    import torch

    nodes = [m for m in snn.modules() if isinstance(m, sj.neuron.BaseNode)]
    count: dict[str, Any] = {"spikes": 0.0, "neurons": 0, "record": False}

    def hook(_m, _inp, out):
        count["spikes"] += float(out.sum())
        if count["record"]:
            count["neurons"] += out[0].numel()

    handles = [m.register_forward_hook(hook) for m in nodes]
    t_max, wanted = max(steps), set(steps)
    correct = dict.fromkeys(steps, 0)
    spikes = dict.fromkeys(steps, 0.0)
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch):
                xb = torch.from_numpy(x[start:start + batch])
                yb = torch.from_numpy(y[start:start + batch])
                sj.functional.reset_net(snn)
                count["spikes"] = 0.0
                total = None
                for t in range(1, t_max + 1):
                    count["record"] = start == 0 and t == 1
                    out = snn(xb)
                    total = out if total is None else total + out
                    if t in wanted:
                        correct[t] += int((total.argmax(1) == yb).sum())
                        spikes[t] += count["spikes"]
    finally:
        for h in handles:
            h.remove()
    n = len(x)
    return ({t: correct[t] / n for t in steps}, {t: spikes[t] / n for t in steps},
            count["neurons"])


def _batches(x: np.ndarray, size: int) -> list:
    import torch

    return [torch.from_numpy(x[i:i + size]) for i in range(0, len(x), size)]


def run(models: Iterable[str] = MODELS, timesteps: Iterable[int] = STEPS,
        recipes: Iterable[str] | None = None, batch: int = BATCH,
        calib_batch: int = CALIB_BATCH, log: Callable[[str], None] | None = None) -> dict:
    """Convert and simulate every (model, recipe); see the module docstring for the dict.

    ``cnn_clip`` in ``models`` also adds the ``cnn_clip[clamp->relu]`` variant."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    torch = import_torch()
    sj = import_spikingjelly()
    train_mnist = import_train_mnist()
    steps = sorted({int(t) for t in timesteps})
    recipes = list(recipes or RECIPES)
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ValueError(f"unknown recipe(s) {unknown}; choose from {list(RECIPES)}")
    with np.load(MODELS_DIR / "mnist_calib.npz") as z:
        x_calib = z["x"].astype(np.float32)
    with np.load(MODELS_DIR / "mnist_test.npz") as z:
        x_test, y_test = z["x"].astype(np.float32), z["y"].astype(np.int64)

    result: dict[str, Any] = {}
    ann_acc: dict[str, float] = {}
    spikes_out: dict[str, dict] = {}
    neurons_out: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    verify: dict[str, float] = {}
    for name in models:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
        model, acc, diff = torch_model_from_onnx(name, train_mnist, x_test, y_test)
        verify[name] = diff
        log(f"[{name}] torch == onnxruntime (max abs diff {diff:.2e}), ANN acc {acc:.4f}")
        variants = [(name, model, acc)]
        if name == "cnn_clip":
            relu_model = clamp_to_relu(model)
            with torch.no_grad():
                pred = relu_model(torch.from_numpy(x_test)).argmax(1).numpy()
            variants.append((RELU_VARIANT, relu_model, float((pred == y_test).mean())))
        for key, ann, acc in variants:
            ann_acc[key] = acc
            result[key], spikes_out[key], neurons_out[key] = {}, {}, {}
            for recipe in recipes:
                t0 = time.perf_counter()
                torch.manual_seed(SEED)
                try:
                    snn = convert(sj, ann, recipe, _batches(x_calib, calib_batch))
                except Exception as exc:  # SJ refuses the model: record, do not simulate
                    msg = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(exc).__name__}: {exc}")
                    errors.setdefault(key, {})[recipe] = msg
                    result[key][recipe] = None
                    log(f"[{key}] {recipe}: SJ conversion failed: {msg}")
                    continue
                accs, spk, neurons = simulate(sj, snn, x_test, y_test, steps, batch)
                result[key][recipe] = accs
                spikes_out[key][recipe] = spk
                neurons_out[key][recipe] = neurons
                log(f"[{key}] {recipe}: " + " ".join(f"T={t}:{a:.4f}" for t, a in accs.items())
                    + f" ({neurons} IF neurons, {time.perf_counter() - t0:.1f}s)")
    result["ann_accuracy"] = ann_acc
    result["spikes_per_sample"] = spikes_out
    result["if_neurons"] = neurons_out
    result["errors"] = errors
    result["config"] = {
        "spikingjelly": sj.version, "torch": torch.__version__, "timesteps": steps,
        "recipes": {r: {"class": RECIPES[r][0], **RECIPES[r][1]} for r in recipes},
        "batch": batch, "calib_batch": calib_batch, "calib_images": int(len(x_calib)),
        "test_images": int(len(x_test)), "torch_vs_onnx_max_abs_diff": verify,
    }
    return result


def markdown(res: dict, spikes_at: int = 128) -> str:
    steps = res["config"]["timesteps"]
    at = spikes_at if spikes_at in steps else steps[-1]
    head = ("| model | SJ recipe | ANN | " + " | ".join(f"T={t}" for t in steps)
            + f" | spikes/sample @T={at} | IF neurons |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model, ann in res["ann_accuracy"].items():
        for recipe, accs in res[model].items():
            if accs is None:
                err = res["errors"][model][recipe].splitlines()[0]
                lines.append(f"| {model} | {recipe} | {100 * ann:.1f} | "
                             + " | ".join("-" for _ in steps)
                             + f" | - | SJ cannot convert: {err[:110]} |")
                continue
            spk = res["spikes_per_sample"][model][recipe][at]
            lines.append(f"| {model} | {recipe} | {100 * ann:.1f} | "
                         + " | ".join(f"{100 * accs[t]:.1f}" for t in steps)
                         + f" | {spk:.0f} | {res['if_neurons'][model][recipe]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--recipes", default=",".join(RECIPES),
                    help=f"comma-separated subset of {','.join(RECIPES)}")
    ap.add_argument("--timesteps", default=",".join(map(str, STEPS)))
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--batch", type=int, default=BATCH, help="test batch size")
    ap.add_argument("--calib-batch", type=int, default=CALIB_BATCH,
                    help="calibration batch size (SJ's statistics are per batch)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run([m for m in args.models.split(",") if m],
              [int(t) for t in args.timesteps.split(",") if t],
              [r for r in args.recipes.split(",") if r], args.batch, args.calib_batch)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    print(f"\nSpikingJelly {res['config']['spikingjelly']}, calibration batch "
          f"{args.calib_batch}, {time.perf_counter() - t0:.0f} s; JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
