"""Calibration activations: onnxruntime on the source model (OnnxCalibration), or the IR
interpreter on an IR graph (IrCalibration, for snnc opt)."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph

# onnxruntime's own log lines (colored, several per warning) are not the user's business
ort.set_default_logger_severity(4)


def ort_session(model: onnx.ModelProto, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session; threads: its intra-op threads (0: onnxruntime's
    default, every core; a Dask worker of one thread asks for 1)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # ORT's own log lines: errors come back as exceptions
    opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:
        raise SnncError(f"onnxruntime cannot run the model: {str(e).splitlines()[0]}"
                        ) from None


def ort_batches(sess: ort.InferenceSession, x: np.ndarray, outputs: list[str] | None,
                batch: int = 100):
    """Yield onnxruntime's outputs batch by batch. A model exported with a fixed batch
    size is fed exactly that many samples at a time."""
    inp = sess.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    step = fixed or batch
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        n = len(xb)
        if fixed and n < fixed:  # pad the last batch to the fixed size
            xb = np.concatenate([xb, np.zeros((fixed - n, *xb.shape[1:]), xb.dtype)])
        try:
            res = sess.run(outputs, {inp.name: xb})
        except Exception as e:
            raise SnncError(f"onnxruntime failed on the data: {str(e).splitlines()[0]}"
                            ) from None
        yield i, [r[:n] for r in res]


def ort_outputs(model: onnx.ModelProto, x: np.ndarray, names: list[str], batch: int = 100,
                threads: int = 0) -> dict[str, np.ndarray]:
    """The named tensors of a model (its graph outputs) over inputs x, batch by batch."""
    sess = ort_session(model, threads)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for _, outs in ort_batches(sess, x, names, batch):
        for n, a in zip(names, outs):
            parts[n].append(a)
    return {n: np.concatenate(parts[n]) for n in names}


class _CachedActivations:
    """Activations computed once per name and kept until a pass forgets them."""

    _cache: dict[str, np.ndarray]

    def forget(self, names: list[str]) -> None:
        """Drop cached activations (a pass done with them, on a deep network)."""
        for n in names:
            self._cache.pop(n, None)


class OnnxCalibration(_CachedActivations):
    """ANN activations of named tensors over a calibration set, batch by batch."""

    def __init__(self, model: onnx.ModelProto, x: np.ndarray, batch: int = 100,
                 runner: Any = None):
        self.model, self.x, self.batch = model, x, batch
        self._cache: dict[str, np.ndarray] = {}
        #: runner(model, names, batch) -> {name: activations over x} in place of
        #: ort_outputs on this process (a Dask cluster's: compiler/distributed.py)
        self.runner = runner

    def activations(self, names: list[str]) -> dict[str, np.ndarray]:
        g = self.model.graph
        produced = {o for n in g.node for o in n.output} | {i.name for i in g.input}
        missing = [n for n in names if n not in self._cache and n in produced]
        if missing:
            m = onnx.ModelProto()
            m.CopyFrom(self.model)
            del m.graph.output[:]
            known = {vi.name: vi for vi in list(g.value_info) + list(g.output) + list(g.input)}
            for n in missing:
                m.graph.output.append(known[n] if n in known else
                                      onnx.helper.make_empty_tensor_value_info(n))
            run = self.runner or (lambda m, names, batch: ort_outputs(m, self.x, names, batch))
            self._cache.update(run(m, missing, self.batch))
        return {n: self._cache[n] for n in names if n in self._cache}


class IrCalibration(_CachedActivations):
    """ANN activations of named values of an IR graph (for `snnc opt` on a text IR that has
    no ONNX model beside it): the IR interpreter on an ANN-level graph, the ANN view (the
    values the spikes code) of a spiking one; the same numbers as OnnxCalibration up to
    float rounding, since the IR's meaning is the ONNX model's."""

    def __init__(self, graph: Graph, x: np.ndarray, batch: int = 100):
        self.graph, self.x, self.batch = graph, x, batch
        self._cache: dict[str, np.ndarray] = {}

    def activations(self, names: list[str]) -> dict[str, np.ndarray]:
        from snnc.backends.sim import interpret, network

        missing = [n for n in names if n not in self._cache and n in self.graph.values]
        if missing:
            parts: dict[str, list[np.ndarray]] = {n: [] for n in missing}
            for i in range(0, len(self.x), self.batch):
                xb = self.x[i:i + self.batch]
                res = (network(self.graph).run_rates(xb, missing)
                       if "spiking" in self.graph.facts else
                       interpret(self.graph, {self.graph.inputs[0]: xb}, missing))
                for n in missing:
                    parts[n].append(res[n])
            for n in missing:
                self._cache[n] = np.concatenate(parts[n])
        return {n: self._cache[n] for n in names if n in self._cache}
