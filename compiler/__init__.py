"""snnc: an ONNX-to-spiking-neural-network compiler.

Public API (the CLI is a thin layer over it):
    compile_model(model, out_dir, ...)  -> CompileResult
    load(out_dir)                       -> Graph
"""
from snnc.ir.errors import SnncError

__version__ = "0.1.0"

__all__ = ["SnncError", "__version__", "compile_model", "load"]


def __getattr__(name: str):
    # Lazy: keep `import snnc` cheap (onnxruntime loads only when compiling).
    if name in ("compile_model", "load"):
        from snnc import driver

        return getattr(driver, name)
    raise AttributeError(name)
