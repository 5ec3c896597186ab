"""Builders of tiny ONNX models (made in code with onnx.helper) and the differential check
"snnc IR interpreter vs onnxruntime" used by tests/test_onnx_ops.py.

Every model built here passes `onnx.checker.check_model(..., full_check=True)`; its single
graph input is called "x" and has the batch as first axis, symbolic ("N") unless a static
batch size is asked for. Weights come from seeded numpy generators, never from downloads.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from snnc.backends.sim import interpret
from snnc.frontend import ImportResult, import_onnx

#: the symbolic batch dimension of most test models
BATCH = "N"
#: batch size fed when the model's batch axis is symbolic
DEFAULT_BATCH = 3
#: accepted max abs error, relative to max(1, max |onnxruntime output|)
TOLERANCE = 1e-4


# ------------------------------------------------------------------ arrays ----------------
def rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def weights(rng: np.random.Generator, shape: Sequence[int], fan_in: int | None = None
            ) -> np.ndarray:
    """He-like scaled normal weights (fan_in defaults to prod(shape[1:]))."""
    shape = tuple(int(d) for d in shape)
    if fan_in is None:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return (rng.standard_normal(shape) * np.sqrt(2.0 / max(1, fan_in))).astype(np.float32)


def small(rng: np.random.Generator, shape: Sequence[int], scale: float = 0.5) -> np.ndarray:
    return (rng.standard_normal(tuple(shape)) * scale).astype(np.float32)


def positive(rng: np.random.Generator, shape: Sequence[int], lo: float = 0.5,
             hi: float = 1.5) -> np.ndarray:
    return rng.uniform(lo, hi, tuple(shape)).astype(np.float32)


def bn_params(rng: np.random.Generator, c: int, prefix: str = "bn") -> dict[str, np.ndarray]:
    """scale, bias, mean, var initializers of a BatchNormalization over c channels."""
    return {f"{prefix}_scale": positive(rng, (c,)), f"{prefix}_bias": small(rng, (c,), 0.2),
            f"{prefix}_mean": small(rng, (c,), 0.2), f"{prefix}_var": positive(rng, (c,))}


def int64(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, np.int64)


# ------------------------------------------------------------------ models ----------------
def _tensor(name: str, a: np.ndarray) -> TensorProto:
    a = np.asarray(a)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    return nh.from_array(a, name)


def build_model(nodes: Sequence[onnx.NodeProto], input_shape: Sequence[int],
                initializers: dict[str, np.ndarray] | None = None,
                outputs: Sequence[str] | None = None, *, opset: int = 13,
                batch: int | str = BATCH, input_name: str = "x", name: str = "snnc_test",
                output_shapes: dict[str, Sequence[int | str]] | None = None
                ) -> onnx.ModelProto:
    """A checked model: one float input (batch, *input_shape), the given nodes and
    initializers, and `outputs` (default: the last node's first output), typed by ONNX shape
    inference."""
    outputs = list(outputs) if outputs is not None else [nodes[-1].output[0]]
    graph = h.make_graph(
        list(nodes), name,
        [h.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, *input_shape])],
        [h.make_empty_tensor_value_info(o) for o in outputs],
        [_tensor(k, v) for k, v in (initializers or {}).items()])
    opsets = [h.make_opsetid("", opset)]
    model = h.make_model(graph, opset_imports=opsets,
                         ir_version=h.find_min_ir_version_for(opsets))
    # Strict shape inference types the outputs (and rejects bad attribute combinations);
    # intermediate value_info is dropped so that the frontend infers shapes itself.
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                               data_prop=True)
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.name in (output_shapes or {}):
            out.CopyFrom(h.make_tensor_value_info(out.name, TensorProto.FLOAT,
                                                  list(output_shapes[out.name])))
        elif not out.type.tensor_type.HasField("shape"):
            raise ValueError(f"shape inference cannot type output '{out.name}': "
                             "pass output_shapes")
    onnx.checker.check_model(model, full_check=True)
    return model


def single_node_model(op_type: str, input_shape: Sequence[int],
                      initializers: dict[str, np.ndarray] | None = None,
                      attrs: dict[str, Any] | None = None, *, opset: int = 13,
                      batch: int | str = BATCH, inputs: Sequence[str] | None = None,
                      ) -> onnx.ModelProto:
    """A model made of one node `op_type` named "node" with output "y".

    Its inputs are `inputs` when given (use "" for a skipped optional input), else "x"
    followed by the initializer names in insertion order."""
    initializers = dict(initializers or {})
    node_inputs = list(inputs) if inputs is not None else ["x", *initializers]
    node = h.make_node(op_type, node_inputs, ["y"], name="node", **(attrs or {}))
    return build_model([node], input_shape, initializers, opset=opset, batch=batch)


def input_shape(model: onnx.ModelProto, batch: int = DEFAULT_BATCH) -> tuple[int, ...]:
    """The full shape to feed the model's first input (symbolic batch -> `batch`)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else batch for d in dims)


def sample_input(model: onnx.ModelProto, seed: int = 0, batch: int = DEFAULT_BATCH
                 ) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(input_shape(model, batch)
                                                       ).astype(np.float32)


# ------------------------------------------------------------------ differential check ----
def run_ort(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no shape-mismatch warnings on stderr
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def run_snnc(res: ImportResult, x: np.ndarray) -> list[np.ndarray]:
    g = res.graph
    assert g is not None, "import returned no graph"
    outs = interpret(g, {g.inputs[0]: x})
    names = res.model.graph.output
    assert list(outs) == [o.name for o in names], (
        f"interpret returned outputs {list(outs)}, the model lists "
        f"{[o.name for o in names]}")
    return list(outs.values())


@dataclass
class Comparison:
    """What run_both returns: the import result and both runs' outputs, in ONNX order."""

    res: ImportResult
    snnc: list[np.ndarray]
    ort: list[np.ndarray]

    def status(self, node: str) -> str:
        """The report status of the ONNX node called `node`."""
        rows = [r for r in self.res.report if r.name == node]
        assert len(rows) == 1, f"{len(rows)} report rows for node '{node}'"
        return rows[0].status


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Max abs error relative to the output scale max(1, max |ref|)."""
    if ref.size == 0:
        return 0.0
    return float(np.abs(got.astype(np.float64) - ref).max()
                 / max(1.0, float(np.abs(ref).max())))


def run_both(model: onnx.ModelProto, x: np.ndarray | None = None, *, seed: int = 0
             ) -> Comparison:
    """Import `model` strictly, run the IR interpreter and onnxruntime on x (default: a
    seeded normal sample) and assert every output matches in order, shape and value."""
    if x is None:
        x = sample_input(model, seed)
    res = import_onnx(model)
    got = run_snnc(res, x)
    ref = run_ort(model, x)
    assert len(got) == len(ref), f"{len(got)} snnc outputs, onnxruntime has {len(ref)}"
    for i, (a, b) in enumerate(zip(got, ref)):
        assert a.shape == b.shape, f"output {i}: snnc shape {a.shape} != ort {b.shape}"
        assert np.isfinite(a).all(), f"output {i}: snnc output is not finite"
        err = rel_err(a, b)
        assert err <= TOLERANCE, f"output {i}: relative error {err:.3g} > {TOLERANCE}"
    return Comparison(res, got, ref)


def unsupported_rows(model: onnx.ModelProto) -> list[Any]:
    """import_onnx(strict=False) on a model expected not to compile: its unsupported rows
    (and the check that no graph came back)."""
    res = import_onnx(model, strict=False)
    assert res.graph is None
    assert res.unsupported, "expected unsupported nodes"
    return res.unsupported
