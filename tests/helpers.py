"""Small helpers shared by tests."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs error relative to the output scale."""
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))
