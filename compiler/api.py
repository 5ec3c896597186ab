"""The Python API: `snnc.compile_model(...) -> Compiled` and `snnc.load(dir) -> Compiled`.

    import snnc
    net = snnc.compile_model("model.onnx", calib="calib.npz", coding="rate")
    out = net.simulate(x, timesteps=32)        # readout per step, spikes per neuron
    res = net.evaluate(x, y, timesteps=[8, 32])  # the `snnc eval --json` numbers
    net.save("out/")                            # what `snnc model.onnx -o out/` writes
    net.emit_c("out_c/")                        # the C backend's sources
    net.emit_nir("net.nir")                     # a NIR graph (snnc[nir])
    net = snnc.load("out/")                     # any snnc output directory

The `snnc` command is a thin layer over these calls (a compile is compile_model with an
Options built from the flags); options are the fields of snnc.driver.Options (the CLI
flags with '-' as '_': norm, timesteps, coding, leak, pipeline, ...), from the CLI, a
config file or keywords alike.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import onnx
from snnc.driver import Options
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes.base import Progress


@dataclass
class Compiled:
    """A compiled spiking network: its IR graph, the compile report, and the files an
    output directory holds (graph, params, runtime, report, source model, manifest)."""

    graph: Graph
    report: dict[str, Any]
    files: dict[str, bytes] = field(repr=False)

    @property
    def timesteps(self) -> int:
        """The length stored with the network (its decision step with temporal coding)."""
        return int(self.graph.meta.get("timesteps", 64))

    def simulate(self, x: np.ndarray, timesteps: int | None = None, *, batch: int = 100
                 ) -> dict[str, Any]:
        """Run inputs x (N, ...) for `timesteps` steps (default: the stored length):
        "readout" (T, N, ...) the output after every step, "spikes" {layer: (N, ...)
        spikes per neuron} of every spike source, "prediction" (N,) the readout's argmax
        at the last step."""
        from snnc.backends.sim import accelerated, cpus, network, runtime

        t = timesteps or self.timesteps
        x = np.asarray(x, np.float32)
        net = network(self.graph, accelerated(), cpus())
        readouts, spikes = [], {}
        taken: dict[str, np.ndarray] = {}

        def take(step: int, counts: dict[str, np.ndarray]) -> None:
            taken.update({k: np.array(v, np.float64) for k, v in counts.items()})

        for off, xb, _ in runtime.batches(x, None, batch):
            taken.clear()
            res = net.simulate(xb, t, sample_offset=off, observe=take)
            readouts.append(res["output"])
            for k, v in taken.items():
                spikes.setdefault(k, []).append(v)
        readout = np.concatenate(readouts, axis=1)
        return {"readout": readout,
                "spikes": {k: np.concatenate(v) for k, v in spikes.items()},
                "prediction": readout[-1].reshape(len(x), -1).argmax(axis=1)}

    def evaluate(self, x: np.ndarray, y: np.ndarray,
                 timesteps: Sequence[int] | None = None, *, batch: int = 100
                 ) -> dict[str, Any]:
        """The `snnc eval --json` numbers on arrays: "ann_accuracy" (onnxruntime on the
        source model) and "snn" (accuracy, spikes and SynOps per sample at every T)."""
        from snnc.driver import SOURCE_FILE, evaluate_arrays

        model = onnx.load_from_string(self.files[SOURCE_FILE])
        res = evaluate_arrays(self.graph, model, np.asarray(x, np.float32),
                              np.asarray(y, np.int64), list(timesteps or [self.timesteps]),
                              batch=batch, diagnose=False)
        keep = ("ann_accuracy", "snn", "ttfs")
        return {k: v for k, v in res.items() if k in keep}

    def save(self, out_dir: str | Path) -> Path:
        """Write the output directory (what `snnc MODEL -o OUT` writes), atomically."""
        from snnc.fsutil import write_tree_atomic

        write_tree_atomic(out_dir, self.files)
        return Path(out_dir)

    def emit_c(self, out_dir: str | Path, *, name: str = "snn") -> dict[str, Any]:
        """Write the C backend's sources for this network into out_dir (its `c/` files);
        returns the footprint totals. Fixed-point C needs a network compiled with
        arith="fixed"."""
        from snnc.driver import c_backend
        from snnc.fsutil import write_tree_atomic

        backend = c_backend(name, self.report.get("source", "model.onnx"))
        files = backend.emit(self.graph)
        write_tree_atomic(out_dir, {k.split("/", 1)[1]: v for k, v in files.items()})
        return backend.footprint_totals

    def emit_nir(self, path: str | Path, *, strict: bool = False) -> list[dict[str, str]]:
        """Write the network as a NIR graph (HDF5, read by `nir.read`) to `path`, and
        beside it `<path stem>.unsupported.json`; returns what NIR cannot express and was
        exported as an approximation ([] when exact; strict=True refuses those instead).
        Needs the nir package (pip install 'snnc[nir]')."""
        from snnc.backends.nir import MODEL_FILE, UNSUPPORTED_FILE, NirBackend
        from snnc.fsutil import write_file_atomic

        backend = NirBackend(strict=strict)
        files = backend.emit(self.graph)
        p = Path(path)
        write_file_atomic(p, files[MODEL_FILE])
        write_file_atomic(p.with_name(p.stem + ".unsupported.json"), files[UNSUPPORTED_FILE])
        return backend.unsupported

    def place(self, target: str, *, rates: dict[str, np.ndarray] | None = None,
              seed: int = 0) -> dict[str, Any]:
        """Place the network on a neuromorphic target (a preset name or a description
        file): the summary; the files are added under place/ (save() writes them)."""
        from snnc.backends.place import PlaceBackend
        from snnc.report import format_table

        backend = PlaceBackend(target, rates=rates, seed=seed, format_table=format_table)
        self.files = {k: v for k, v in self.files.items() if not k.startswith("place/")}
        self.files.update(backend.emit(self.graph))
        return backend.summary


def compile_model(model: str | Path | onnx.ModelProto, out_dir: str | Path | None = None,
                  *, calib: str | Path | np.ndarray | None = None,
                  options: Options | None = None, depfile: str | Path | None = None,
                  config: str | Path | None = None, progress: Progress | None = None,
                  print_ir_after_all: TextIO | None = None,
                  dump_ir: str | Path | None = None,
                  timings: dict[str, float] | None = None, force: bool = False,
                  **kwargs: Any) -> Compiled:
    """Compile an ONNX model (a path or a ModelProto) with the given options: the fields
    of snnc.driver.Options as keywords (e.g. norm="max", timesteps=32 or [8, 32, 256],
    tune="auto" (choose the recipe on held-out calibration inputs; the CLI turns it on
    for --timesteps given alone), coding="ttfs",
    backends=("c",), pipeline="fold-batchnorm,...") or one Options object; calib: a .npz
    path or an array of calibration inputs (N, ...). With out_dir, the output directory
    is written too (atomically). The `snnc MODEL -o OUT` command is this call; its other
    flags are the remaining keywords: depfile (a Make/Ninja depfile naming the inputs),
    config (the config file the options came from, an input), progress, print_ir_after_all
    (a stream), dump_ir (a folder), timings (a dict filled with seconds per pass), force
    (write into a non-empty folder snnc did not write; its files are kept)."""
    from snnc.driver import compile_model as _compile

    if options is not None and kwargs:
        raise SnncError("give the options either as an Options object or as keywords")
    if options is None:
        known = set(Options.__dataclass_fields__)
        bad = sorted(set(kwargs) - known)
        if bad:
            raise SnncError(f"unknown option(s) {', '.join(bad)}",
                            hint=f"options: {', '.join(sorted(known))}")
        ts = kwargs.get("timesteps")
        if isinstance(ts, (list, tuple)):  # timesteps=[8, 32, 256]: tuned for each
            if not ts or not all(isinstance(t, int) for t in ts):
                raise SnncError(f"timesteps must be an integer or a list of integers, "
                                f"got {ts!r}")
            kwargs = {**kwargs, "timesteps": max(ts),
                      "targets": tuple(sorted(set(ts))) if len(set(ts)) > 1 else ()}
        options = Options(**kwargs)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.onnx"
        if isinstance(model, onnx.ModelProto):
            onnx.save(model, path)
        else:
            path = Path(model)
        calib_path = calib
        if isinstance(calib, np.ndarray):
            calib_path = Path(d) / "calib.npz"
            np.savez(calib_path, x=calib.astype(np.float32))
        res = _compile(path, out_dir, calib=calib_path, options=options, depfile=depfile,
                       config=config, progress=progress,
                       print_ir_after_all=print_ir_after_all, dump_ir=dump_ir,
                       timings=timings, force=force)
    return Compiled(res.graph, res.report, res.files)


def load(out_dir: str | Path) -> Compiled:
    """An snnc output directory as a Compiled network (every file it holds that snnc
    wrote)."""
    import json

    from snnc.driver import REPORT_FILE, load_graph

    out = Path(out_dir)
    graph = load_graph(out)
    files = {p.relative_to(out).as_posix(): p.read_bytes()
             for p in sorted(out.rglob("*")) if p.is_file()}
    manifest = files.get("manifest.json")
    if manifest is not None:  # only what snnc wrote (not build products)
        owned = set(json.loads(manifest)["outputs"]) | {"manifest.json"}
        files = {k: v for k, v in files.items() if k in owned or k.startswith("place/")}
    report = json.loads(files[REPORT_FILE]) if REPORT_FILE in files else {}
    return Compiled(graph, report, files)
