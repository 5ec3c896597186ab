"""Shared by the benchmark scripts: the benchmark models and data, and compiling them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "build" / "models"
MODELS = ["mlp", "cnn_avg", "cnn_bn_max"]


def ensure_models(names: list[str]) -> dict[str, Path]:
    """Trained ONNX models in build/models (trained by tools/train_mnist.py if missing:
    needs torch; `pip install torch==2.13.0`)."""
    missing = [n for n in names if not (MODELS_DIR / f"{n}.onnx").is_file()]
    if missing or not (MODELS_DIR / "mnist_test.npz").is_file():
        subprocess.run([sys.executable, str(ROOT / "tools" / "train_mnist.py"), "--out",
                        str(MODELS_DIR), "--models", ",".join(missing or names[:1])],
                       check=True)
    return {n: MODELS_DIR / f"{n}.onnx" for n in names}


def data(split: str) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(MODELS_DIR / f"mnist_{split}.npz") as z:
        return z["x"], (z["y"] if "y" in z.files else None)
