"""onnxruntime kernels for the simulator's linear ops (what `snnc eval` runs).

The simulator runs every linear op of a spiking graph on a whole chunk of (steps x batch)
frames at once. For convolutions and average pools, onnxruntime's CPU kernels (MLAS,
direct NCHWc convolution, no im2col) are several times faster than numpy's im2col + BLAS:
`OrtKernels` builds, once per op, a one-node ONNX model of the op with its weights and a
symbolic batch, and the runtime calls it instead of its numpy kernel
(runtime.Network(accel=...)). Same meaning, as the differential tests check:
  * float: the same sums, in another order (float32 rounding differs, within tolerance);
  * fixed point: used only where it is exact, i.e. for a convolution whose input is binary
    spikes and whose integer weights sum (in absolute value, per output) below 2^24, so
    that every partial sum is an exactly representable float32 integer; the bias is added
    in int64 and the result saturated as in the integer kernel. Everything else keeps the
    exact integer kernels of the runtime.
Dense layers stay with numpy (one BLAS GEMM, as fast as onnxruntime's).

The standalone OUT/snn_runtime.py never uses this module: it stays numpy-only.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from snnc.ir import semantics

OPSET = 13
_EXACT_F32 = 2.0 ** 24


class OrtKernels:
    """Per-op onnxruntime sessions for conv and avgpool. threads: onnxruntime's
    intra-op threads (None: its default, one per physical core)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def linear(self, op: dict[str, Any], params: dict[str, np.ndarray], fixed: bool,
               kinds: list[str], fallback: Callable | None = None
               ) -> Callable[[list[np.ndarray]], np.ndarray] | None:
        """A kernel for the op record (on-disk form) with the network's params, or None
        (the runtime's own kernel is used). kinds: what each operand carries ("spikes":
        binary)."""
        kind, a = op["kind"], op["attrs"]
        if kind == "conv":
            return self._conv(op, params, a, fixed, kinds[0] == "spikes")
        if kind == "avgpool" and not fixed:  # fixed point: an exact window sum (runtime)
            node = helper.make_node("AveragePool", ["x"], ["y"],
                                    kernel_shape=list(a["kernel"]),
                                    strides=list(a["strides"]), pads=list(a["pads"]),
                                    count_include_pad=int(a["count_include_pad"]),
                                    ceil_mode=int(a["ceil_mode"]))
            return self._runner(node, [])
        return None

    def window_max(self, op: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray] | None:
        """The max over a spiking max-pool's windows (an ONNX MaxPool: exact), for the
        float32 keys of its gate (runtime.s_spikemaxpool); other types: None."""
        a = op["attrs"]
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(a["kernel"]),
                                strides=list(a["strides"]), pads=list(a["pads"]),
                                dilations=list(a["dilations"]), ceil_mode=int(a["ceil_mode"]))
        run = self._runner(node, [])

        def window_max(x: np.ndarray) -> np.ndarray:
            if x.dtype != np.float32:
                from snnc.backends.sim.runtime import window_max as numpy_max

                return numpy_max(a, x)
            return run([x])

        return window_max

    def _conv(self, op: dict[str, Any], P: dict[str, np.ndarray], a: dict[str, Any],
              fixed: bool, spikes: bool) -> Callable[[list[np.ndarray]], np.ndarray] | None:
        w = P[op["params"]["weight"]]
        bias = op["params"].get("bias")
        if fixed:
            l1 = float(np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).sum(axis=1).max())
            if not spikes or l1 >= _EXACT_F32:
                return None
        inits = [numpy_helper.from_array(w.astype(np.float32), "w")]
        inputs = ["x", "w"]
        if bias and not fixed:
            inits.append(numpy_helper.from_array(P[bias].astype(np.float32), "b"))
            inputs.append("b")
        node = helper.make_node("Conv", inputs, ["y"], strides=list(a["strides"]),
                                pads=list(a["pads"]), dilations=list(a["dilations"]),
                                group=int(a["groups"]))
        run = self._runner(node, inits)
        if not fixed:
            return run
        b64 = None if not bias else P[bias].astype(np.int64)[:, None, None]

        def exact(xs: list[np.ndarray]) -> np.ndarray:
            y = run([xs[0].astype(np.float32)]).astype(np.int64)
            if b64 is not None:
                y += b64
            return semantics.sat32(y)

        return exact

    def _runner(self, node: onnx.NodeProto, inits: list[onnx.TensorProto]
                ) -> Callable[[list[np.ndarray]], np.ndarray]:
        graph = helper.make_graph(
            [node], "snnc_kernel",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        so = ort.SessionOptions()
        so.log_severity_level = 4
        so.inter_op_num_threads = 1
        if self.threads:
            so.intra_op_num_threads = self.threads
        # the simulator calls between numpy and native work: idle onnxruntime threads
        # must sleep, not spin on the cores that work needs
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

        def run(xs: list[np.ndarray]) -> np.ndarray:
            return sess.run(None, {"x": np.ascontiguousarray(xs[0], np.float32)})[0]

        return run
