#!/usr/bin/env python3
"""Deterministic training and ONNX export of the small MNIST reference models.

Trains a handful of tiny PyTorch models on the 5k-image MNIST subset
(``../shared/data/mnist5k.npz``: 4000 train / 1000 test images), exports each one to
ONNX (opset 13, input ``input`` with a dynamic batch dimension, output ``logits`` --
raw logits, no softmax -- except ``cnn_bn_max`` whose output is ``probs`` after a final
Softmax), checks the exported graph against PyTorch with onnxruntime and reports the
onnxruntime test accuracy.

Models (``--models``): mlp, cnn_avg, cnn_bn_max, cnn_clip, resnet, cnn_big, lenet, and
``NAME_gL`` for any of them but resnet: NAME retrained for temporal coding with TDSNN's
G(x) gates of leak L in front of every synaptic layer (trained as NAME first, then with
the gates for 10 epochs, gradients passed straight through; e.g. lenet_g5, the default
set's one).

Inputs of every model are float32 ``(N, 1, 28, 28)`` pixels / 255 in ``[0, 1]``.

Also writes ``mnist_calib.npz`` (first 500 training images) and ``mnist_test.npz``
(all 1000 test images), keys ``x`` (float32, [0, 1]) and ``y`` (int64), into
``--data-out`` (default: the ``--out`` directory).

Export dependencies: only ``torch`` (CPU build) + ``onnx`` + ``onnxruntime``. The
legacy TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) is used; it
needs no ``onnxscript``.

BatchNormalization: in eval mode the TorchScript exporter folds BN into the preceding
Conv whenever constant folding is on. ``cnn_bn_max``, ``resnet`` and ``cnn_big`` are meant to keep
their BatchNormalization nodes (to exercise the compiler's BN folding), so they are
exported with ``do_constant_folding=False`` (still eval mode, i.e. BN uses the running
statistics). The only artefacts this leaves are ``Identity`` nodes that the exporter
uses to alias bit-identical parameters (it de-duplicates initializers); they are
replaced by plain initializer copies. This really happens in ``resnet``: the biases of
the two BNs feeding the second block's Add get identical gradients, hence end up
bit-identical.
All other models are exported with constant folding on.

Determinism: fixed seeds (per model, so ``--models X`` reproduces the same ``X`` as a
full run), ``torch.use_deterministic_algorithms(True)``, 2 intra-op threads and a
seeded numpy generator for shuffling / augmentation. Running the script twice gives
byte-identical ``.onnx`` files on the same machine/software stack.

Examples (from the repository root)::

    python tools/train_mnist.py --out build/models
    python tools/train_mnist.py --out examples --models cnn_bn_max --as mnist_cnn
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "mnist5k.npz"
DEFAULT_OUT = REPO_ROOT / "build" / "models"
OPSET = 13
INPUT_NAME = "input"
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
NUM_THREADS = 2
N_CALIB = 500
MAX_ABS_DIFF = 1e-4


# --------------------------------------------------------------------------- models


class ClampReLU(nn.Module):
    """Threshold ReLU ``clamp(x, 0, 1)`` (exported as ONNX ``Clip(x, 0, 1)``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, 0.0, 1.0)


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + skip, then ReLU; 1x1 conv+BN projection if needed."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.skip = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.skip(x))


class Gate(nn.Module):
    """TDSNN's G(x) = exp(ceil(L ln(x + 1)) / L) for x >= 0, the value a temporally coded
    spike carries, put in front of every synaptic layer to retrain a network for
    time-to-first-spike coding (TDSNN eq. 11). Training passes gradients straight
    through as if G(x) were x + 1 (G(x) ~ x + 1; ceil has no useful gradient); export
    (eval mode) writes the exact chain Add 1, Log, Mul L, Ceil, Div L, Exp, which snnc's
    frontend fuses into one gate."""

    def __init__(self, leak: float) -> None:
        super().__init__()
        self.leak = float(leak)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.exp(torch.ceil(torch.log(x + 1.0) * self.leak) / self.leak)
        if self.training:
            return (x + 1.0) + (g - (x + 1.0)).detach()
        return g


def insert_gates(model: nn.Module, leak: float) -> nn.Sequential:
    """The same network (sharing its layers) with G(x) in front of every synaptic layer
    (Conv2d, Linear) of a Sequential, the network's input included."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("G(x) gates are inserted into Sequential models only")
    layers: list[nn.Module] = []
    for m in model:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            layers.append(Gate(leak))
        layers.append(m)
    return nn.Sequential(*layers)


def build_lenet() -> nn.Module:
    """LeNet-5 style: 6c5-ReLU-maxpool2-16c5-ReLU-maxpool2-fc120-fc84-fc10."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),  # 28x28
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(6, 16, 5),  # 10x10
        nn.ReLU(),
        nn.MaxPool2d(2),  # 5x5
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def build_mlp() -> nn.Module:
    """784-1200-1200-10 MLP with dropout (inactive in the eval-mode export)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 1200),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(1200, 1200),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(1200, 10),
    )


def _cnn_avg(act: Callable[[], nn.Module]) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),  # 24x24
        act(),
        nn.AvgPool2d(2),  # 12x12
        nn.Conv2d(16, 32, 5),  # 8x8
        act(),
        nn.AvgPool2d(2),  # 4x4
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def build_cnn_avg() -> nn.Module:
    """16c5-avgpool2-32c5-avgpool2-fc10 with ReLU."""
    return _cnn_avg(nn.ReLU)


def build_cnn_clip() -> nn.Module:
    """Same as ``cnn_avg`` with every ReLU replaced by ``clamp(x, 0, 1)``."""
    return _cnn_avg(ClampReLU)


def build_cnn_bn_max() -> nn.Module:
    """16c3-BN-ReLU-maxpool2-32c3-BN-ReLU-maxpool2-fc10 (Softmax appended at export)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7x7
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )


def build_cnn_big() -> nn.Module:
    """32c3-BN-ReLU-32c3-BN-ReLU-maxpool2-64c3-BN-ReLU-maxpool2-fc128-ReLU-fc10: an
    11.5 M-MAC CNN (the size users convert; the simulator-speed bench needs >= 10 M)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7x7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def build_resnet() -> nn.Module:
    """Stem 16c3-BN-ReLU, block 16->16, block 16->32 (stride 2, 1x1 proj), GAP, fc10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        ResidualBlock(16, 16),
        ResidualBlock(16, 32, stride=2),  # 14x14
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


@dataclass(frozen=True)
class ModelSpec:
    """How to build, train and export one model."""

    name: str
    build: Callable[[], nn.Module]
    epochs: int
    output_name: str = "logits"
    final_softmax: bool = False  # appended after training, for export only
    keep_batchnorm: bool = False  # export without constant folding so BN is not fused
    #: retrain for temporal coding: train model `init_from` first, insert G(x) with
    #: this leak in front of its synaptic layers and train on (TDSNN: train, then retrain
    #: with G(x); from scratch the gated network's ReLUs die and it never learns)
    gate: float | None = None
    init_from: str | None = None


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("mlp", build_mlp, epochs=30),
    ModelSpec("cnn_avg", build_cnn_avg, epochs=50),
    ModelSpec(
        "cnn_bn_max",
        build_cnn_bn_max,
        epochs=20,
        output_name="probs",
        final_softmax=True,
        keep_batchnorm=True,
    ),
    ModelSpec("cnn_clip", build_cnn_clip, epochs=50),
    ModelSpec("resnet", build_resnet, epochs=30, keep_batchnorm=True),
    ModelSpec("cnn_big", build_cnn_big, epochs=15, keep_batchnorm=True),
    ModelSpec("lenet", build_lenet, epochs=20),
)


def gated_spec(base: ModelSpec, leak: float, epochs: int = 10) -> ModelSpec:
    """BASE_gL: BASE retrained with G(x) gates of leak L (TDSNN's recipe)."""
    return ModelSpec(f"{base.name}_g{leak:g}", base.build, epochs=epochs,
                     output_name=base.output_name, final_softmax=base.final_softmax,
                     keep_batchnorm=base.keep_batchnorm, gate=leak, init_from=base.name)


MODEL_SPECS += (gated_spec(MODEL_SPECS[-1], 5.0),)  # lenet_g5


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Mnist:
    """MNIST subset as float32 [0, 1] NCHW arrays and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_mnist(path: Path) -> Mnist:
    with np.load(path) as d:
        return Mnist(
            x_train=(d["x_train"].astype(np.float32) / 255.0),
            y_train=d["y_train"].astype(np.int64),
            x_test=(d["x_test"].astype(np.float32) / 255.0),
            y_test=d["y_test"].astype(np.int64),
        )


def write_data_files(data: Mnist, out_dir: Path) -> list[Path]:
    """Write ``mnist_calib.npz`` (first 500 train images) and ``mnist_test.npz``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    calib = out_dir / "mnist_calib.npz"
    test = out_dir / "mnist_test.npz"
    np.savez_compressed(calib, x=data.x_train[:N_CALIB], y=data.y_train[:N_CALIB])
    np.savez_compressed(test, x=data.x_test, y=data.y_test)
    return [calib, test]


def random_shift(x: np.ndarray, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Translate each image by a random integer offset in [-max_shift, max_shift]."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    offsets = rng.integers(0, 2 * max_shift + 1, size=(n, 2))
    out = np.empty_like(x)
    for i, (dy, dx) in enumerate(offsets):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w]
    return out


# ------------------------------------------------------------------------- training


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(model: nn.Module, data: Mnist, epochs: int, seed: int, log_prefix: str = "") -> None:
    """Adam (lr 1e-3, cosine decay), batch 64, cross-entropy, random +-2px shifts."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    steps_per_epoch = (len(data.x_train) + BATCH_SIZE - 1) // BATCH_SIZE
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    y_all = torch.from_numpy(data.y_train)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(data.x_train))
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            xb = torch.from_numpy(random_shift(data.x_train[idx], rng))
            loss = loss_fn(model(xb), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = torch_accuracy(model, data.x_test, data.y_test)
        print(
            f"{log_prefix}epoch {epoch + 1:2d}/{epochs} "
            f"loss {total / len(order):.4f} test acc {acc:.4f}",
            flush=True,
        )


@torch.no_grad()
def torch_predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    return model(torch.from_numpy(x)).numpy()


def torch_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((torch_predict(model, x).argmax(1) == y).mean())


# --------------------------------------------------------------------------- export


def inline_identity_initializers(model: onnx.ModelProto) -> None:
    """Replace ``Identity(initializer)`` nodes by a renamed copy of the initializer.

    The TorchScript exporter de-duplicates bit-identical parameters and re-creates the
    aliases with ``Identity`` nodes when constant folding is off.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def strip_doc_strings(model: onnx.ModelProto) -> None:
    model.doc_string = ""
    model.graph.doc_string = ""
    for node in model.graph.node:
        node.doc_string = ""


def export_onnx(model: nn.Module, spec: ModelSpec) -> onnx.ModelProto:
    """Export an eval-mode model (opset 13, dynamic batch) and tidy the graph."""
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation notice
        torch.onnx.export(
            model,
            (torch.zeros(1, 1, 28, 28),),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[spec.output_name],
            dynamic_axes={INPUT_NAME: {0: "batch"}, spec.output_name: {0: "batch"}},
            do_constant_folding=not spec.keep_batchnorm,
            training=torch.onnx.TrainingMode.EVAL,
            export_params=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    inline_identity_initializers(proto)
    strip_doc_strings(proto)
    onnx.checker.check_model(proto, full_check=True)
    op_types = {n.op_type for n in proto.graph.node}
    if spec.keep_batchnorm and "BatchNormalization" not in op_types:
        raise RuntimeError(f"{spec.name}: BatchNormalization nodes were fused away")
    if "Dropout" in op_types:
        raise RuntimeError(f"{spec.name}: Dropout survived the eval-mode export")
    return proto


def ort_predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = NUM_THREADS
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {INPUT_NAME: x})[0]


def verify_and_score(
    model_bytes: bytes, reference: nn.Module, x: np.ndarray, y: np.ndarray,
    gated: bool = False,
) -> tuple[float, float]:
    """Compare ORT against torch (full batch and batch 1); return (max diff, ORT acc).
    gated: the network has G(x) gates, whose ceil turns a last-bit difference between
    the two runtimes into a step of exp(1/L) on a few values; there the predictions must
    agree on 99.5 % of the inputs instead."""
    got = ort_predict(model_bytes, x)
    want = torch_predict(reference, x)
    diff = float(np.abs(got - want).max())
    single = ort_predict(model_bytes, x[:1])
    diff = max(diff, float(np.abs(single - want[:1]).max()))
    if gated:
        agree = float((got.argmax(1) == want.argmax(1)).mean())
        if agree < 0.995:
            raise RuntimeError(f"onnxruntime/torch predictions agree on {agree:.2%} only")
    elif diff >= MAX_ABS_DIFF:
        raise RuntimeError(f"onnxruntime/torch mismatch: max abs diff {diff:.3g}")
    return diff, float((got.argmax(1) == y).mean())


# ----------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Result:
    name: str
    path: Path
    accuracy: float
    max_diff: float
    size: int
    sha256: str
    op_types: tuple[str, ...]
    seconds: float


def run_model(
    spec: ModelSpec, data: Mnist, out_path: Path, epochs: int | None, seed: int
) -> Result:
    t0 = time.perf_counter()
    set_determinism(seed)
    model = spec.build()
    if spec.gate is not None:
        base = next(s for s in MODEL_SPECS if s.name == spec.init_from)
        train(model, data, epochs if epochs is not None else base.epochs, seed,
              f"[{spec.name} <- {base.name}] ")
        model = insert_gates(model, spec.gate)
        set_determinism(seed)
    train(model, data, epochs if epochs is not None else spec.epochs, seed, f"[{spec.name}] ")
    export_model: nn.Module = (
        nn.Sequential(model, nn.Softmax(dim=1)) if spec.final_softmax else model
    )
    proto = export_onnx(export_model, spec)
    model_bytes = proto.SerializeToString()
    diff, acc = verify_and_score(model_bytes, export_model, data.x_test, data.y_test,
                                 gated=spec.gate is not None)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(model_bytes)
    return Result(
        name=spec.name,
        path=out_path,
        accuracy=acc,
        max_diff=diff,
        size=len(model_bytes),
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        op_types=tuple(sorted({n.op_type for n in proto.graph.node})),
        seconds=time.perf_counter() - t0,
    )


def spec_for(name: str) -> ModelSpec | None:
    """A model of MODEL_SPECS, or BASE_gL: any Sequential one retrained with G(x) gates
    of leak L for temporal coding (e.g. cnn_bn_max_g5)."""
    specs = {s.name: s for s in MODEL_SPECS}
    if name in specs:
        return specs[name]
    m = re.fullmatch(r"(.+)_g([0-9]+(?:\.[0-9]+)?)", name)
    if m and m.group(1) in specs and specs[m.group(1)].gate is None:
        return gated_spec(specs[m.group(1)], float(m.group(2)))
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [s.name for s in MODEL_SPECS]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mnist5k.npz path")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: build/models)"
    )
    p.add_argument(
        "--models",
        default=",".join(names),
        help=f"comma-separated subset of {','.join(names)} (default: all)",
    )
    p.add_argument("--epochs", type=int, default=None, help="override epochs for all models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data-out",
        type=Path,
        default=None,
        help="where to write mnist_{calib,test}.npz (default: --out)",
    )
    p.add_argument(
        "--as",
        dest="as_name",
        default=None,
        metavar="NAME",
        help="with exactly one model: write it as OUT/NAME.onnx instead of OUT/<model>.onnx",
    )
    args = p.parse_args(argv)
    selected = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(m for m in set(selected) - set(names) if spec_for(m) is None)
    if unknown or not selected:
        p.error(f"unknown model(s) {unknown}; choose from {names}")
    if args.as_name is not None and len(selected) != 1:
        p.error("--as needs exactly one model in --models")
    args.models = selected
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)

    data = load_mnist(args.data)
    for path in write_data_files(data, args.data_out or args.out):
        print(f"wrote {path}")

    results: list[Result] = []
    for name in args.models:
        out_path = args.out / f"{args.as_name or name}.onnx"
        spec = spec_for(name)
        assert spec is not None
        res = run_model(spec, data, out_path, args.epochs, args.seed)
        print(
            f"[{name}] wrote {res.path} ({res.size} bytes, sha256 {res.sha256[:16]}), "
            f"ORT test acc {res.accuracy:.4f}, max|ORT-torch| {res.max_diff:.2e}, "
            f"{res.seconds:.1f}s",
            flush=True,
        )
        results.append(res)

    print("\nsummary:")
    for r in results:
        print(
            f"  {r.name:11s} acc {r.accuracy:.4f}  {r.size:>9d} B  {r.seconds:6.1f}s  "
            f"ops: {', '.join(r.op_types)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
