"""snnc: an ONNX-to-spiking-neural-network compiler.

Public API (compiler/api.py; the `snnc` command is a thin layer over it):
    compile_model(model, out_dir=None, *, calib=None, **options) -> Compiled
    load(out_dir)                                                  -> Compiled
Compiled: .simulate(x, timesteps), .evaluate(x, y, timesteps), .save(dir), .emit_nir(path),
.emit_c(dir), .place(target), .graph, .report.
"""
from snnc.ir.errors import SnncError

__version__ = "0.1.0"

__all__ = ["Compiled", "SnncError", "__version__", "compile_model", "load"]


def __getattr__(name: str):
    # Lazy: keep `import snnc` cheap (onnxruntime loads only when compiling).
    if name in ("compile_model", "load", "Compiled"):
        from snnc import api

        return getattr(api, name)
    raise AttributeError(name)
