"""The compile and evaluate jobs behind the CLI (the public Python API)."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from snnc import __version__, html_report
from snnc.backends import BACKENDS
from snnc.backends.place.targets import load_target, preset_names
from snnc.backends.sim import Simulator, accelerated, cpus, describe, network, runtime
from snnc.budget import check_simulation
from snnc.calibration import IrCalibration, OnnxCalibration, ort_batches, ort_session
from snnc.data import ArrayData, Data, load_npz, open_data
from snnc.diagnostics import Diagnostics, cost_table, energy, verdicts
from snnc.frontend import ImportResult, import_model, load_model
from snnc.fsutil import write_tree_atomic
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.serialize import dumps_json, load_graph
from snnc.ir.text import parse_graph, print_graph
from snnc.passes import (
    CalibrateBias,
    ConvertToSnn,
    ConvertToTtfs,
    FiniteInput,
    FoldAffine,
    FoldBatchNorm,
    NegateWeights,
    Normalize,
    OffsetCompensation,
    Pass,
    PassContext,
    Quantize,
    ReluBeforeMaxPool,
    ShiftBias,
    SignedNeurons,
    TtfsSchedule,
)
from snnc.passes.base import Progress
from snnc.passes.normalize import parse_method
from snnc.passmanager import parse_pipeline, pipeline_spec, run_passes
from snnc.report import format_table, layer_table

SOURCE_FILE = "source.onnx"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
IR_TEXT_FILE = "model.snnir"
HTML_REPORT_FILE = "report.html"


@dataclass
class Options:
    """Every compile flag, with its default. The CLI maps 1:1 onto these."""

    norm: str = "percentile:99.9"
    reset: str = "subtract"
    timesteps: int = 64
    input_coding: str = "analog"
    seed: int = 0
    readout: str = "membrane"
    v_init: float = 0.0
    shift_bias: bool = False
    #: finite input time "T1:T2" (METHODS 6): input and biases for T1 steps, T2 drain steps
    fit: str | None = None
    #: bias calibration (passes/calibrate_bias.py): cancel each layer's mean rate error,
    #: measured by simulating the calibration inputs for the compile-time length
    calibrate_bias: bool = False
    #: signed neurons (passes/signed_neurons.py): hidden populations take back spikes
    #: their later input cancels (simulator only)
    signed: bool = False
    backends: tuple[str, ...] = ("sim",)
    # --- C backend (issue 4) ---
    #: "float" or "fixed" (passes/quantize.py: integer weights, thresholds, membranes)
    arith: str = "float"
    #: prefix of the generated C files and symbols (default: the sanitized model stem)
    c_name: str | None = None
    # --- end C backend ---
    #: "rate" (default) or "ttfs": time-to-first-spike coding (TDSNN, passes/ttfs.py)
    coding: str = "rate"
    #: ttfs: the LIF leak constant L
    leak: float = 5.0
    #: ttfs: spike times rounded ("round", default) or ceil'ed as in the paper ("ceil")
    spike_time: str = "round"
    #: ttfs: the value a layer's calibrated maximum (p99.9) is coded as
    ttfs_range: float = 20.0
    #: place backend: a preset name or a target description file
    target: str | None = None
    #: place backend: the seed of the placement optimizer
    place_seed: int = 0
    #: nir backend: refuse instead of exporting an approximation of what NIR cannot express
    nir_strict: bool = False
    #: an explicit pass pipeline (--pipeline) instead of the one the options above build;
    #: the conversion options must then stay at their defaults
    pipeline: str | None = None
    #: every T the network is meant to run at (--timesteps 8,32,256): T-dependent
    #: corrections are fitted to hold at all of them (timesteps is then their maximum,
    #: the stored length); () = timesteps alone
    targets: tuple[int, ...] = ()
    #: "auto": choose the recipe (norm, v_init, shift bias, bias calibration) on held-out
    #: calibration data at the target T (compiler/tune.py); "off": the options as given
    tune: str = "off"

    def fit_steps(self) -> tuple[int, int] | None:
        """(T1, T2) of --fit, or None."""
        if self.fit is None:
            return None
        t1, sep, t2 = self.fit.partition(":")
        try:
            steps = int(t1), int(t2)
        except ValueError:
            steps = (0, -1)
        if not sep or steps[0] < 1 or steps[1] < 0:
            raise SnncError(f"bad finite input time '{self.fit}'",
                            hint="use T1:T2 (input steps : drain steps), e.g. --fit 5:4")
        return steps

    def target_steps(self) -> list[int]:
        """The sorted T values the network is tuned for (targets, or timesteps)."""
        return sorted(set(self.targets)) if self.targets else [self.timesteps]

    def total_timesteps(self) -> int:
        """The simulation length stored with the network: T, or T1 + T2 with --fit."""
        fit = self.fit_steps()
        return self.timesteps if fit is None else fit[0] + fit[1]

    #: the settings that only choose passes: an explicit pipeline replaces them all
    PIPELINE_ONLY = ("norm", "reset", "input_coding", "seed", "readout", "v_init",
                     "shift_bias", "fit", "calibrate_bias", "signed", "arith", "coding", "leak",
                     "spike_time", "ttfs_range", "tune")

    #: rate-coding settings that do not apply to temporal coding
    RATE_ONLY = ("norm", "shift_bias", "calibrate_bias", "signed", "fit", "reset", "v_init",
                 "input_coding", "readout", "arith", "timesteps", "targets", "tune")

    def __post_init__(self) -> None:
        # sim first, always: `snnc eval OUT` reads it
        self.backends = tuple(dict.fromkeys(["sim", *self.backends]))

    def is_default(self, name: str) -> bool:
        return getattr(self, name) == self.__dataclass_fields__[name].default

    def _refuse_given(self, names: tuple[str, ...], message: str, hint: str) -> None:
        """A SnncError naming the first of `names` set away from its default."""
        for name in names:
            if not self.is_default(name):
                flag = "--" + name.replace("_", "-")
                raise SnncError(message.format(flag=flag), hint=hint)

    def validate(self) -> None:
        if self.pipeline is not None:
            self._refuse_given(self.PIPELINE_ONLY, "{flag} and --pipeline both choose passes",
                               "give the pass its option inside the pipeline (e.g. "
                               "normalize{method=max}), or drop --pipeline")
            parse_pipeline(self.pipeline)
        if self.coding not in ("rate", "ttfs"):
            raise SnncError(f"unknown coding '{self.coding}'", hint="use rate or ttfs")
        if self.coding == "ttfs":
            self._refuse_given(self.RATE_ONLY, "{flag} does not apply to --coding ttfs",
                               "temporal coding schedules its own length and thresholds; "
                               "drop the flag, or use --coding rate")
            for b in self.backends:
                if b in ("c", "place", "nir"):
                    raise SnncError(f"the {b} backend does not take temporally coded "
                                    "networks yet", hint="use --backend sim with --coding ttfs")
            if not self.leak > 0:
                raise SnncError(f"--leak must be > 0, got {self.leak}")
        elif not (self.is_default("leak") and self.is_default("spike_time")):
            raise SnncError("--leak and --spike-time apply to --coding ttfs only")
        if self.spike_time not in ("round", "ceil"):
            raise SnncError(f"unknown spike timing '{self.spike_time}'",
                            hint="use round or ceil")
        parse_method(self.norm)
        self.fit_steps()
        if self.tune not in ("off", "auto"):
            raise SnncError(f"unknown tuning '{self.tune}'", hint="use auto or off")
        if self.targets:
            from snnc.budget import MAX_TIMESTEPS as _MAX

            if any(not 1 <= t <= _MAX for t in self.targets):
                raise SnncError(f"timesteps must be in [1, {_MAX}], got "
                                f"{','.join(map(str, self.targets))}")
            if max(self.targets) != self.timesteps:
                raise SnncError(f"the stored length (timesteps {self.timesteps}) must be the "
                                f"largest target T ({max(self.targets)})")
            if len(set(self.targets)) > 1:
                if self.shift_bias:
                    raise SnncError("--shift-bias is tuned to one T (theta/2T per step) and "
                                    "decays at the others", hint="with several --timesteps, "
                                    "use --v-init 0.5: the same charge, once, right at every T")
                if self.fit is not None:
                    raise SnncError("--fit with several --timesteps: finite input time runs "
                                    "a fixed T1+T2", hint="give one --timesteps")
        for name, val, allowed in (("reset", self.reset, ("subtract", "zero")),
                                   ("input coding", self.input_coding, ("analog", "poisson")),
                                   ("readout", self.readout, ("membrane", "spikes",
                                                              "softmax"))):
            if val not in allowed:
                raise SnncError(f"unknown {name} '{val}'", hint=f"use {' or '.join(allowed)}")
        if self.arith not in ("float", "fixed"):  # C backend (issue 4)
            raise SnncError(f"unknown arithmetic '{self.arith}'", hint="use float or fixed")
        from snnc.budget import MAX_TIMESTEPS

        if not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise SnncError(f"timesteps must be in [1, {MAX_TIMESTEPS}], got {self.timesteps}")
        if self.fit_steps() is not None and sum(self.fit_steps()) > MAX_TIMESTEPS:
            raise SnncError(f"--fit {self.fit}: T1 + T2 must be <= {MAX_TIMESTEPS}")
        for name in ("seed", "place_seed"):
            if not 0 <= getattr(self, name) < 2**63:
                raise SnncError(f"--{name.replace('_', '-')} must be a non-negative integer, "
                                f"got {getattr(self, name)}")
        if not 0.0 <= self.v_init < 1.0:
            raise SnncError(f"v_init must be in [0, 1) (a fraction of the threshold), "
                            f"got {self.v_init}")
        if self.nir_strict and "nir" not in self.backends:
            raise SnncError("--nir-strict applies to the NIR export; add --emit nir")
        if self.c_name is not None and "c" not in self.backends:
            raise SnncError("--c-name names the C backend's files; it needs --backend c")
        for b in self.backends:
            if b not in BACKENDS:
                raise SnncError(f"unknown backend '{b}'",
                                hint=f"available: {', '.join(sorted(BACKENDS))}")
        if "place" in self.backends and not self.target:
            raise SnncError("the place backend needs a target",
                            hint=f"pass --target with a preset ({', '.join(preset_names())}) "
                                 "or a JSON file")
        if self.target and "place" in self.backends:
            load_target(self.target)  # a bad description fails before compiling
        if self.signed:
            if self.reset != "subtract" or self.fit is not None:
                raise SnncError("signed neurons reset by subtraction and run without finite "
                                "input time", hint="drop --signed-neurons, or --reset zero "
                                "and --fit")
            if self.arith != "float" or any(b in ("c", "place", "nir")
                                            for b in self.backends):
                raise SnncError("signed neurons (-1 spikes) run in the simulator only: the C "
                                "backend, fixed point, NIR and the chip targets have no "
                                "negative spikes", hint="drop --signed-neurons for those "
                                "backends")

    def passes(self, gate_leak: float | None = None) -> list[Pass]:
        """The pass objects these options ask for (or the --pipeline given); gate_leak:
        the L of the G(x) gates of a network retrained for temporal coding (converted
        exactly: ceil spike times, its own value range, no offset compensation)."""
        if self.pipeline is not None:
            return parse_pipeline(self.pipeline)
        front: list[Pass] = [FoldBatchNorm(), FoldAffine(), ReluBeforeMaxPool()]
        if gate_leak is not None:
            return front + [ConvertToTtfs(leak=gate_leak, timing="ceil", range=1.0,
                                          gated=True), TtfsSchedule(), NegateWeights()]
        if self.coding == "ttfs":
            return front + [Normalize(method="percentile:99.9"),
                            ConvertToTtfs(leak=self.leak, timing=self.spike_time,
                                          range=self.ttfs_range),
                            OffsetCompensation(), TtfsSchedule(), NegateWeights()]
        fit = self.fit_steps()
        # with finite input time, the rate is read over the T1 input steps, so the
        # quantization step that shift-bias centres is 1/T1
        shift_t = self.timesteps if fit is None else fit[0]
        out = front + [Normalize(method=self.norm)]
        if self.shift_bias:
            out.append(ShiftBias(timesteps=shift_t))
        out.append(ConvertToSnn(reset=self.reset, v_init=self.v_init,
                                input_coding=self.input_coding, seed=self.seed,
                                readout=self.readout))
        if fit is not None:
            out.append(FiniteInput(steps=fit[0]))
        if self.signed:
            out.append(SignedNeurons())
        if self.calibrate_bias:
            more = [t for t in self.target_steps() if t != self.total_timesteps()]
            out.append(CalibrateBias(timesteps=self.total_timesteps(),
                                     targets="+".join(map(str, more)) if fit is None else ""))
        if self.arith == "fixed":
            out.append(Quantize(weight_bits=16, input_bits=8))
        return out

    def pipeline_text(self, gate_leak: float | None = None) -> str:
        """passes() as a pipeline string (what --pipeline takes, and the report shows)."""
        return pipeline_spec(self.passes(gate_leak))


@dataclass
class CompileResult:
    graph: Graph
    imported: ImportResult
    report: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


def convert(model: onnx.ModelProto, opts: Options, *, calib_x: np.ndarray | None = None,
            print_ir_after_all: io.TextIOBase | None = None,
            dumps: dict[str, bytes] | None = None,
            timings: dict[str, float] | None = None, structure_only: bool = False,
            calibration: OnnxCalibration | None = None, progress: Progress | None = None,
            simulator: Simulator | None = None, imported: ImportResult | None = None,
            memo: dict[tuple[str, ...], Any] | None = None
            ) -> tuple[ImportResult, Graph, PassContext]:
    """Import and run the pipeline (no files written). structure_only: no data at all,
    every scale 1 (what `snnc check` needs to find conversion problems). `calibration`
    (instead of calib_x) reuses activations computed for an earlier conversion.
    progress: a progress reporter for long passes (bias calibration). simulator: what
    passes simulate with (default: this process's; distributed.ClusterSimulator).
    imported: model's import_model() result, reused (the tuner converts one model many
    times); memo: run_passes' memo of pipeline prefixes, shared by conversions of one
    model with one calibration and the same stored T."""
    imported = imported or import_model(model)
    graph = imported.graph.copy()  # the meta below is this conversion's
    if len(graph.inputs) != 1:
        raise SnncError(f"the model has {len(graph.inputs)} inputs; snnc converts networks "
                        "with exactly one input")
    graph.meta["timesteps"] = opts.total_timesteps()
    if len(opts.target_steps()) > 1:
        graph.meta["target_timesteps"] = opts.target_steps()
    gate_leak = None if opts.pipeline is not None else _gate_leak(graph, opts)
    if calibration is None and calib_x is not None:
        calibration = OnnxCalibration(imported.model, calib_x)
    ctx = PassContext(calibration=calibration, structure_only=structure_only,
                      simulator=simulator or Simulator(threads=cpus()),
                      progress=progress)
    passes = opts.passes(gate_leak)
    ctx.notes["pipeline"] = pipeline_spec(passes)
    graph = run_passes(graph, passes, ctx,
                       print_ir_after_all=print_ir_after_all, dumps=dumps,
                       timings=timings, memo=memo)
    return imported, graph, ctx


def _gate_leak(graph: Graph, opts: Options) -> float | None:
    """The leak L of a network retrained with G(x) gates for temporal coding (None: no
    gates); such a network converts only with --coding ttfs, at its own L."""
    gates = [op for op in graph.ops if op.kind == "ttfsgate"]
    if not gates:
        return None
    if opts.coding != "ttfs":
        raise SnncError("this network was trained with G(x) gates for temporal coding "
                        f"(exp(ceil(L ln(x + 1)) / L), L = {gates[0].leak:g}), which rate "
                        "coding cannot express", node=gates[0].origin,
                        hint="compile it with --coding ttfs")
    leak = gates[0].leak
    if not opts.is_default("leak") and opts.leak != leak:
        raise SnncError(f"--leak {opts.leak:g} differs from the L = {leak:g} the network was "
                        "retrained with", node=gates[0].origin, hint="drop --leak")
    if not opts.is_default("spike_time"):
        raise SnncError("--spike-time does not apply to a network retrained with G(x): its "
                        "spike times are the gates' ceil", hint="drop --spike-time")
    return leak


def c_backend(name: str, source: str) -> Any:
    """The C backend for a network named `name` compiled from the model file `source`."""
    return BACKENDS["c"](name=name, source=source, version=__version__,
                         format_table=format_table)


def input_files(model_path: Path, model: onnx.ModelProto, calib: Path | None) -> list[Path]:
    """Every file a compile reads: the model, its external-data files, the calibration
    data."""
    out = [model_path]
    for t in model.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                f = model_path.parent / kv.value
                if f not in out:
                    out.append(f)
    if calib is not None:
        out.append(calib)
    return out


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def manifest(opts: Options, inputs: list[Path], files: dict[str, bytes]) -> bytes:
    """OUT/manifest.json: snnc's version, the resolved options, every input file (name
    and sha256) and every output file's sha256. No timestamps or absolute paths: the same
    inputs and flags give the same bytes."""
    return dumps_json({
        "snnc_version": __version__,
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in opts.__dict__.items()},
        "inputs": [{"file": p.name, "sha256": _sha256(p.read_bytes())} for p in inputs],
        "outputs": {k: _sha256(files[k]) for k in sorted(files)},
    })


def depfile_text(targets: list[Path], deps: list[Path]) -> str:
    """A Make / Ninja depfile: the targets depend on every input file (spaces, '#' and
    '$' escaped as Make and Ninja read them)."""
    def esc(p: Path) -> str:
        return (str(p).replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#")
                .replace("$", "$$"))

    return (" \\\n  ".join(esc(t) for t in targets) + ": \\\n  "
            + " \\\n  ".join(esc(d) for d in deps) + "\n")


def compile_model(model_path: str | Path, out_dir: str | Path | None, *,
                  calib: str | Path | None = None, options: Options | None = None,
                  print_ir_after_all: io.TextIOBase | None = None,
                  dump_ir: str | Path | None = None,
                  timings: dict[str, float] | None = None,
                  progress: Progress | None = None,
                  depfile: str | Path | None = None,
                  config: str | Path | None = None, force: bool = False) -> CompileResult:
    """Compile an ONNX model into out_dir (written atomically; nothing on failure).
    progress: a progress reporter for long passes (bias calibration); depfile: also
    write a Make / Ninja depfile, after the outputs: OUT/manifest.json (rewritten by every
    compile: the stamp a build rule names) depends on every input file; config: the
    configuration file the options came from (an input too); dump_ir: a folder for the IR
    after every pass (written with the outputs, never inside them); force: write into a
    non-empty folder snnc did not write (its files are kept)."""
    opts = options or Options()
    opts.validate()
    _check_output_paths(out_dir, dump_ir, depfile)
    from snnc.fsutil import check_writable

    if dump_ir is not None:  # a file, or a place that cannot be written: before any work
        check_writable(dump_ir, directory=True, what="--dump-ir")
    if depfile is not None:
        check_writable(depfile, what="--depfile")
    dumps: dict[str, bytes] | None = None if dump_ir is None else {}
    source = Path(model_path)
    model = load_model(source)
    input_shape = _input_shape(model)
    calib_x = None
    if calib is not None:
        calib_x, _ = load_npz(calib, input_shape, need_labels=False, what="calibration")
    elif opts.pipeline is not None:
        pass  # the passes that need data say so themselves
    elif opts.coding == "ttfs":
        raise SnncError("temporal coding needs calibration data to schedule its layers",
                        hint="pass --calib CALIB.npz (a few hundred training inputs as x)")
    elif opts.calibrate_bias:
        raise SnncError("bias calibration needs calibration data",
                        hint="pass --calib CALIB.npz (a few hundred training inputs as x)")
    elif opts.norm != "clip":
        raise SnncError(f"normalization '{opts.norm}' needs calibration data",
                        hint="pass --calib CALIB.npz (a few hundred training inputs as x), "
                             "or --norm clip for a network whose every activation is a Clip")
    if depfile is not None:
        dep = Path(os.path.abspath(depfile))
        for p in input_files(source, model, None if calib is None else Path(calib)) + (
                [] if config is None else [Path(config)]):
            if Path(os.path.abspath(p)) == dep:
                raise SnncError(f"--depfile '{depfile}' is an input of this compile",
                                hint="name a new file, e.g. OUT.d")
    tuned = None
    if opts.tune == "auto":  # choose the recipe on held-out calibration data
        from snnc.tune import tune

        tuned = tune(model, calib_x, opts, progress)
        opts = tuned.options
        if timings is not None:
            timings["tune (every recipe)"] = tuned.seconds
    if tuned is not None and print_ir_after_all is None and dumps is None:
        imported, graph, ctx = tuned.converted
    else:
        imported, graph, ctx = convert(
            model, opts, calib_x=calib_x if tuned is None else calib_x[tuned.fit_idx],
            print_ir_after_all=print_ir_after_all, dumps=dumps, timings=timings,
            progress=progress)
    report = {
        "snnc_version": __version__,
        "source": source.name,
        "pipeline": ctx.notes["pipeline"],
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in opts.__dict__.items()},
        "coverage": [r.__dict__ for r in imported.report],
        **({"tune": tuned.report} if tuned is not None else {}),
        "lambda": ctx.notes.get("lambda", {}),
        **{k: ctx.notes[k] for k in ("bias_calibration", "ttfs_schedule",
                                     "offset_compensation") if k in ctx.notes},
        "layers": layer_table(graph),
        "ann_macs": sum(r["macs"] for r in layer_table(imported.graph)),
    }
    if "quantization" in ctx.notes:  # C backend (issue 4): per-layer quantization stats
        report["quantization"] = ctx.notes["quantization"]
    files: dict[str, bytes] = {}
    for b in opts.backends:
        # C backend (issue 4): the C backend is named after the model
        if b == "c":
            backend = c_backend(opts.c_name or source.stem, source.name)
        elif b == "place":
            backend = BACKENDS[b](opts.target, rates=place_rates(graph, calib_x),
                                  seed=opts.place_seed, format_table=format_table)
        elif b == "nir":
            backend = BACKENDS[b](strict=opts.nir_strict)
        else:
            backend = BACKENDS[b]()
        missing = backend.requires - graph.facts
        if missing:
            if opts.pipeline is None:
                raise SnncError(f"internal: backend '{b}' needs {sorted(missing)}")
            raise SnncError(f"the pipeline '{opts.pipeline}' does not establish "
                            f"{', '.join(sorted(missing))}, which the {b} backend needs",
                            hint="end it with convert-to-snn (rate coding) or "
                                 "convert-to-ttfs,...,negate-weights (temporal coding)"
                                 + ("; quantize for fixed point" if "fixed-point" in missing
                                    else ""))
        files.update(backend.emit(graph))
        if b == "c":  # C backend (issue 4): footprint totals in the report
            report["c_footprint"] = backend.footprint_totals
        if b == "nir":  # what NIR cannot express, exported as an approximation
            report["nir_unsupported"] = backend.unsupported
    files[IR_TEXT_FILE] = print_graph(graph).encode()
    files[SOURCE_FILE] = source.read_bytes()
    files[REPORT_FILE] = dumps_json(report)
    files[HTML_REPORT_FILE] = html_report.render(html_report.with_outputs(report, files))
    inputs = input_files(source, model, None if calib is None else Path(calib))
    if config is not None:
        inputs.append(Path(config))
    files[MANIFEST_FILE] = manifest(opts, inputs, files)
    # the dumps first: a failure writing them leaves no OUT behind (and OUT, written
    # last, is the stamp build systems watch)
    new_dumps = dumps is not None and not Path(dump_ir).exists()
    if dumps is not None:
        write_tree_atomic(dump_ir, dumps)
    if out_dir is not None:
        try:
            write_tree_atomic(out_dir, files, force=force)
        except BaseException:
            if new_dumps:
                import shutil

                shutil.rmtree(dump_ir, ignore_errors=True)
            raise
        if depfile is not None:
            from snnc.fsutil import write_file_atomic

            write_file_atomic(depfile, depfile_text([Path(out_dir) / MANIFEST_FILE],
                                                    inputs).encode())
    return CompileResult(graph, imported, report, files)


def _check_output_paths(out_dir: str | Path | None, dump_ir: str | Path | None,
                        depfile: str | Path | None) -> None:
    """Before any work: the dump folder and the depfile lie outside OUT (OUT is replaced
    as a whole; what is inside it is snnc's), and OUT is not inside the dump folder."""
    if out_dir is None:
        return
    out = Path(os.path.abspath(out_dir))
    for flag, p in (("--dump-ir", dump_ir), ("--depfile", depfile)):
        if p is None:
            continue
        q = Path(os.path.abspath(p))
        if q == out or out in q.parents or q in out.parents:
            raise SnncError(f"{flag} '{p}' and the output directory '{out_dir}' overlap",
                            hint=f"put the {flag[2:]} beside OUT, not inside it")


#: calibration inputs simulated to measure the spike rates that weigh placement traffic
PLACE_SAMPLES = 64


def place_rates(graph: Graph, x: np.ndarray | None) -> dict[str, np.ndarray] | None:
    """Spikes per neuron per step of every population, simulated on (at most
    PLACE_SAMPLES) calibration inputs for the network's own length; None without data."""
    if x is None:
        return None
    from snnc.backends.place import netmodel, spike_rates

    model = netmodel.build(graph)
    steps = int(graph.meta.get("timesteps", 64))
    names = [op.name for op in graph.ops if op.kind in ("if", "spikesoftmax")]
    xs = np.asarray(x[:PLACE_SAMPLES], np.float32)
    counts = Simulator(threads=cpus()).spike_counts(graph, xs, steps, names)
    return spike_rates(model, counts, steps, xs)


def place(out_dir: str | Path, target: str, *, calib: str | Path | None = None,
          seed: int = 0) -> dict[str, Any]:
    """Place an already compiled network (OUT) on another target: OUT/place/ is replaced
    (atomically); the rest of OUT is untouched. Returns the summary and the text."""
    if not 0 <= seed < 2**63:
        raise SnncError(f"--seed must be a non-negative integer, got {seed}")
    from snnc.backends.place import PlaceBackend, placeable
    from snnc.fsutil import write_subdir_atomic

    out = Path(out_dir)
    graph = load_graph(out)
    if "spiking" not in graph.facts:
        raise SnncError(f"'{out}' holds no spiking network")
    placeable(graph)  # before simulating calibration rates
    calib_x = None
    if calib is not None:
        calib_x, _ = load_npz(calib, graph.shape(graph.inputs[0]), need_labels=False,
                              what="calibration")
    backend = PlaceBackend(target, rates=place_rates(graph, calib_x), seed=seed,
                           format_table=format_table)
    files = backend.emit(graph)
    write_subdir_atomic(out, "place", {k.split("/", 1)[1]: v for k, v in files.items()})
    return {"summary": backend.summary, "text": backend.text}


def c_input_bytes(graph: Graph, x: np.ndarray) -> bytes:
    """Inputs x (N, ...) in the format the generated C example reads (INPUT.bin): the
    samples one after the other, each its input's values in row-major order, float32 or
    (fixed point) the int16 of the network's input format, native byte order."""
    fx = graph.meta.get("fixed_point")
    xi = (runtime.quantize_input(x, int(fx["input_bits"])).astype(np.int16) if fx
          else np.asarray(x, np.float32))
    return np.ascontiguousarray(xi).tobytes()


def _samples(out_dir: str | Path, data: str | Path, first: int, count: int | None
             ) -> tuple[Graph, np.ndarray, np.ndarray | None]:
    graph = load_graph(Path(out_dir))
    x, y = load_npz(data, graph.shape(graph.inputs[0]), need_labels=False)
    if first < 0 or first >= len(x):
        raise SnncError(f"--first {first} is outside the {len(x)} samples of '{data}'")
    if count is not None and count < 1:
        raise SnncError(f"--count must be >= 1, got {count}")
    end = len(x) if count is None else min(len(x), first + count)
    return graph, x[first:end], None if y is None else y[first:end]


def export_input(out_dir: str | Path, data: str | Path, *, first: int = 0,
                 count: int | None = None) -> tuple[bytes, int]:
    """`snnc export-input`: samples first..first+count of a data file as the C example's
    INPUT.bin for the network in OUT; (bytes, number of samples)."""
    graph, x, _ = _samples(out_dir, data, first, count)
    return c_input_bytes(graph, x), len(x)


def verify_c(out_dir: str | Path, data: str | Path, *, first: int = 0, count: int = 100,
             timesteps: int | None = None, cc: str | None = None) -> dict[str, Any]:
    """`snnc verify-c`: build OUT/c's example program (in a temporary folder), run it on
    samples of a data file and compare, per sample, every spiking layer's spike count and
    the readout with the simulator's. Fixed point must agree exactly; float within the
    summation-order tolerance the C backend documents (a membrane sitting on its
    threshold may fire a step earlier or later)."""
    import shutil
    import subprocess
    import tempfile

    out = Path(out_dir)
    names = sorted(p.name[:-len("_weights.c")] for p in (out / "c").glob("*_weights.c"))
    if len(names) != 1 or not (out / "c" / "main_example.c").is_file():
        raise SnncError(f"'{out}' holds no C backend output (c/NAME.c, c/main_example.c)",
                        hint="compile with --backend c")
    name = names[0]
    compiler = cc or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise SnncError("no C compiler found", hint="install gcc, or pass --cc PATH")
    graph, x, _ = _samples(out, data, first, count)
    steps = timesteps or int(graph.meta.get("timesteps", 64))
    if steps < 1:
        raise SnncError(f"--timesteps must be >= 1, got {steps}")
    with tempfile.TemporaryDirectory() as d:
        exe, inp = Path(d) / "example", Path(d) / "input.bin"
        srcs = [str(out / "c" / f) for f in ("main_example.c", f"{name}.c",
                                             f"{name}_weights.c")]
        r = subprocess.run([compiler, "-std=c99", "-O2", "-o", str(exe), *srcs, "-lm"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            first_err = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr)
            raise SnncError(f"the generated C does not build with {compiler}: "
                            f"{first_err.strip()[:300]}")
        inp.write_bytes(c_input_bytes(graph, x))
        r = subprocess.run([str(exe), str(inp), str(steps), "0", str(first)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SnncError(f"the C example failed (exit {r.returncode}): "
                            f"{r.stderr.strip()[:300]}")
    rows = [ln.split() for ln in r.stdout.splitlines()]
    if len(rows) != len(x):
        raise SnncError(f"the C example printed {len(rows)} results for {len(x)} samples")
    i, j = rows[0].index("spikes"), rows[0].index("out")
    fixed = "fixed_point" in graph.meta
    c_spk = np.array([[int(v) for v in f[i + 1:j]] for f in rows], np.int64)
    c_out = np.array([[float(v) for v in f[j + 1:]] for f in rows])
    c_cls = np.array([int(f[5]) for f in rows])
    layers = [op.name for op in graph.ops if op.kind == "if"]
    spikes: dict[str, np.ndarray] = {}

    def record(op: str, t0: int, chunk: np.ndarray) -> None:
        if op in layers:
            spikes[op] = spikes.get(op, 0) + chunk.reshape(len(chunk), len(x), -1).sum(
                axis=(0, 2))

    res = network(graph).simulate(x, steps, record=record, sample_offset=first)
    s_out = np.asarray(res["output"][-1], np.float64).reshape(len(x), -1)
    s_spk = np.stack([np.asarray(spikes.get(n, np.zeros(len(x))), np.int64)
                      for n in layers], axis=1) if layers else np.zeros((len(x), 0), np.int64)
    scale = max(float(np.abs(s_out).max()), 1e-12)
    report = {
        "c_name": name, "compiler": compiler, "samples": len(x), "timesteps": steps,
        "arith": "fixed" if fixed else "float",
        "layers": [{"layer": n, "identical": float((c_spk[:, k] == s_spk[:, k]).mean()),
                    "c_spikes": int(c_spk[:, k].sum()), "sim_spikes": int(s_spk[:, k].sum())}
                   for k, n in enumerate(layers)],
        "spike_counts_identical": float((c_spk == s_spk).mean()) if c_spk.size else 1.0,
        "class_agreement": float((c_cls == s_out.argmax(axis=1)).mean()),
        "max_output_diff": float(np.abs(c_out - s_out).max()) / (1.0 if fixed else scale),
    }
    if fixed:
        report["ok"] = bool(np.array_equal(c_spk, s_spk) and np.array_equal(c_out, s_out))
    else:
        tot_c, tot_s = int(c_spk.sum()), int(s_spk.sum())
        report["ok"] = bool(report["spike_counts_identical"] >= 0.99
                            and abs(tot_c - tot_s) <= 0.005 * max(tot_s, 1)
                            and report["max_output_diff"] <= 0.02
                            and report["class_agreement"] >= 0.99)
    return report


def opt(text: str | None, pipeline: str, *, model: str | Path | None = None,
        params: str | Path | None = None, calib: str | Path | None = None,
        print_ir_after_all: io.TextIOBase | None = None,
        timings: dict[str, float] | None = None, progress: Progress | None = None
        ) -> Graph:
    """`snnc opt`: run a pass pipeline on a text IR (weights inline or from a params .npz)
    or on an ONNX model's imported IR (model=path), and return the result (like
    mlir-opt). Calibration activations come from onnxruntime for a model, else from the
    IR interpreter on the input graph."""
    if model is not None:
        imported = import_model(load_model(Path(model)))
        graph, onnx_model = imported.graph, imported.model
    else:
        weights = None if params is None else _read_params(Path(params))
        graph = parse_graph(text or "", weights, strict=True)
    passes = parse_pipeline(pipeline)
    calibration: OnnxCalibration | IrCalibration | None = None
    if calib is not None:
        if len(graph.inputs) != 1:
            raise SnncError(f"--calib needs a graph with one input, this one has "
                            f"{len(graph.inputs)}")
        shape = graph.shape(graph.inputs[0])
        x, _ = load_npz(calib, tuple(shape), need_labels=False, what="calibration")
        calibration = (OnnxCalibration(onnx_model, x) if model is not None
                       else IrCalibration(graph, x))
    ctx = PassContext(calibration=calibration, simulator=Simulator(threads=cpus()),
                      progress=progress)
    return run_passes(graph, passes, ctx, print_ir_after_all=print_ir_after_all,
                      timings=timings)


def _read_params(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    if not path.is_file():
        raise SnncError(f"params file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise SnncError(f"params file '{path}' is not a readable .npz ({e})") from None


def _input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    inits = {i.name for i in model.graph.initializer}
    for i in model.graph.input:
        if i.name not in inits:
            dims = i.type.tensor_type.shape.dim
            return tuple(d.dim_value for d in dims[1:])
    raise SnncError("the model has no inputs")


def _output_classes(model: onnx.ModelProto) -> int | None:
    """Elements per sample of the model's first output (the classes), if static."""
    dims = model.graph.output[0].type.tensor_type.shape.dim[1:]
    if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return math.prod(d.dim_value for d in dims)
    return None


def load(out_dir: str | Path) -> Graph:
    """The compiled IR graph in an snnc output directory."""
    return load_graph(out_dir)


def ann_predictions(model: onnx.ModelProto, x: np.ndarray, batch: int = 100) -> np.ndarray:
    """The ANN's top-1 class per input (onnxruntime on the source model)."""
    return _ann_top1(ort_session(model), x, batch)


def _ann_top1(sess: Any, x: np.ndarray, batch: int) -> np.ndarray:
    """The top-1 class per input of an onnxruntime session, batch by batch."""
    return np.concatenate([outs[0].reshape(len(outs[0]), -1).argmax(axis=1)
                           for _, outs in ort_batches(sess, x, None, batch)]).astype(np.int64)


def ann_accuracy(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray, batch: int = 100
                 ) -> float:
    return int((ann_predictions(model, x, batch) == y).sum()) / len(x)


def evaluate(out_dir: str | Path, data: str | Path, timesteps: list[int], *,
             batch: int = 100, progress: Progress | None = None,
             diagnose: bool = True, costs: str = "horowitz45nm",
             workers: int | None = None, scheduler: str | None = None) -> dict[str, Any]:
    """Simulate a compiled network on labelled data: the `snnc eval` JSON contract
    ("ann_accuracy", "snn") plus, with `diagnose`, the per-layer diagnostics
    (compiler/diagnostics.py) under "diagnostics". data: an .npz, or a folder or glob of
    shards (data.open_data), read batch by batch. workers / scheduler: shard the work
    on a Dask cluster (compiler/distributed.py); the numbers are the same."""
    out = Path(out_dir)
    graph = load_graph(out)
    if "spiking" not in graph.facts:
        raise SnncError(f"'{out}' holds no spiking network")
    if not timesteps or any(t < 1 for t in timesteps):
        raise SnncError("timesteps must be positive integers, e.g. 8,16,32")
    shape = graph.shape(graph.inputs[0])
    dataset = open_data(data, shape, need_labels=True,
                        classes=math.prod(graph.shape(graph.outputs[0])))
    source = out / SOURCE_FILE
    if not source.is_file():
        raise SnncError(f"'{out}' has no copy of the source model ({SOURCE_FILE})",
                        hint="recompile the model")
    return evaluate_data(graph, load_model(source), dataset, timesteps, batch=batch,
                         progress=progress, diagnose=diagnose, costs=costs,
                         workers=workers, scheduler=scheduler)


def eval_payload(res: dict[str, Any]) -> dict[str, Any]:
    """What `snnc eval --json` writes: the ANN's accuracy and the SNN's numbers per T."""
    return {"ann_accuracy": res["ann_accuracy"], "snn": res["snn"],
            **({"ttfs": res["ttfs"]} if "ttfs" in res else {})}


def write_html_report(out_dir: str | Path, res: dict[str, Any]) -> Path:
    """Re-render OUT/report.html with an evaluation (accuracy vs T, rates, SynOps, energy)
    and keep OUT/manifest.json's hash of it true."""
    from snnc.fsutil import write_file_atomic

    out = Path(out_dir)
    try:
        report = json.loads((out / REPORT_FILE).read_text())
    except (OSError, ValueError) as e:
        raise SnncError(f"cannot read {out / REPORT_FILE}: {e}") from None
    page = html_report.render(html_report.with_outputs(report, html_report.read_outputs(out)),
                              eval_payload(res), res.get("diagnostics"))
    write_file_atomic(out / HTML_REPORT_FILE, page)
    man_path = out / MANIFEST_FILE
    if man_path.is_file():
        try:
            man = json.loads(man_path.read_text())
            man["outputs"][HTML_REPORT_FILE] = _sha256(page)
        except (ValueError, KeyError, TypeError):
            return out / HTML_REPORT_FILE  # not snnc's manifest: leave it alone
        man["outputs"] = dict(sorted(man["outputs"].items()))
        write_file_atomic(man_path, dumps_json(man))
    return out / HTML_REPORT_FILE


def evaluate_arrays(graph: Graph, model: onnx.ModelProto, x: np.ndarray, y: np.ndarray,
                    timesteps: list[int], *, batch: int = 100,
                    progress: Progress | None = None, diagnose: bool = True,
                    costs: str = "horowitz45nm") -> dict[str, Any]:
    """evaluate() on a spiking graph, its source model and labelled arrays in memory."""
    return evaluate_data(graph, model, ArrayData(x, y), timesteps, batch=batch,
                         progress=progress, diagnose=diagnose, costs=costs)


@dataclass
class EvalPart:
    """What evaluating some batches counts (mergeable, exactly: see distributed.py)."""

    ann_correct: int
    tally: runtime.Tally
    diagnostics: Diagnostics | None

    def merge(self, other: EvalPart) -> EvalPart:
        self.ann_correct += other.ann_correct
        self.tally.merge(other.tally)
        if self.diagnostics is not None and other.diagnostics is not None:
            self.diagnostics.merge(other.diagnostics)
        return self


#: per process: simulators and onnxruntime sessions built for a network (by token), so
#: that a worker running many shards of one evaluation builds them once
_worker_cache: dict[tuple[str, str], Any] = {}


def _cached(kind: str, token: str, make: Any) -> Any:
    key = (kind, token)
    if key not in _worker_cache:
        if len(_worker_cache) >= 8:  # a long-lived worker serving many sweeps
            _worker_cache.pop(next(iter(_worker_cache)))
        _worker_cache[key] = make()
    return _worker_cache[key]


def eval_part(graph: Graph, model: onnx.ModelProto | None, data: Data, lo: int, hi: int,
              batch: int, steps: list[int], *, diagnose: bool, tiles: int,
              threads: int = 1, token: str | None = None,
              progress: Any = None) -> EvalPart:
    """Evaluate the batches of `batch` samples starting in [lo, hi) (lo a multiple of
    batch): the ANN's correct count (model given) and the SNN's Tally and diagnostics.
    The unit of work one process does over the whole set and a worker over a shard.
    token: names the graph for the worker cache (None: no caching)."""
    def make_net() -> Any:
        return network(graph, accelerated(), threads, tiles=tiles)

    net = make_net() if token is None else _cached("net", token, make_net)
    sess = None
    if model is not None:
        sess = ort_session(model) if token is None else _cached(
            "ort", token, lambda: ort_session(model, threads))
    obs = Diagnostics(net.g, max(steps), steps) if diagnose else None
    ann = [0]

    def items() -> Any:
        for off, xb, yb in data.batches(batch, lo, hi):
            if sess is not None:
                ann[0] += int((_ann_top1(sess, xb, batch) == yb).sum())
            yield off, xb, yb

    t = runtime.tally(net, items(), steps, progress, obs)
    return EvalPart(ann[0], t, obs)


def run_parts(graph: Graph, model: onnx.ModelProto | None, data: Data, batch: int,
              steps: list[int], *, diagnose: bool, progress: Progress | None,
              cluster: Any = None, description: str = "simulating",
              shared: dict[str, Any] | None = None) -> EvalPart:
    """eval_part over the whole data set: in this process, or sharded over a Dask
    cluster (distributed.Cluster) and merged. shared: futures of graph/model/data already
    scattered to the cluster (a sweep shares the data once for all its settings)."""
    if cluster is None:
        n = len(data)
        bar = (contextlib.nullcontext(None) if progress is None else
               progress(description, n))
        with bar as update:
            return eval_part(graph, model, data, 0, n, batch, steps, diagnose=diagnose,
                             tiles=cpus(), threads=cpus(), progress=update)
    jobs = part_jobs(graph, model, data, batch, steps, diagnose, cluster, shared)
    return merge_parts(cluster.run(eval_part, jobs, progress, description))


def part_jobs(graph: Graph, model: onnx.ModelProto | None, data: Data, batch: int,
              steps: list[int], diagnose: bool, cluster: Any,
              shared: dict[str, Any] | None = None) -> list[Any]:
    """The eval_part tasks (distributed.Job) that cover the data set on the cluster: the
    graph, model and data shared once (unless `shared` holds them already)."""
    import uuid

    from snnc.distributed import Job, batch_ranges

    token = uuid.uuid4().hex  # names this network in the workers' caches
    shared = dict(shared or {})
    for key, obj in (("graph", graph), ("model", model), ("data", data)):
        if key not in shared:
            shared[key] = cluster.share(obj)
    n = len(data)
    return [Job(data.where(lo, hi), hi - lo,
                (shared["graph"], shared["model"], shared["data"], lo, hi, batch, steps),
                {"diagnose": diagnose, "tiles": cpus(), "token": token})
            for lo, hi in batch_ranges(n, batch, cluster.n_workers)]


def merge_parts(parts: list[EvalPart]) -> EvalPart:
    total = parts[0]
    for part in parts[1:]:
        total.merge(part)
    return total


def evaluate_data(graph: Graph, model: onnx.ModelProto, data: Data, timesteps: list[int],
                  *, batch: int = 100, progress: Progress | None = None,
                  diagnose: bool = True, costs: str = "horowitz45nm",
                  workers: int | None = None, scheduler: str | None = None
                  ) -> dict[str, Any]:
    """evaluate() on a spiking graph, its source model and a data set (data.Data)."""
    from snnc.distributed import maybe_cluster

    table = cost_table(costs) if diagnose else None
    steps = sorted(set(timesteps))
    if graph.meta.get("coding") == "ttfs":
        table, diagnose = None, False  # rate-coding diagnostics
    diagnose = diagnose and table is not None
    n = len(data)
    check_simulation(graph, min(batch, n), max(steps))
    kernels = accelerated()
    with maybe_cluster(workers, scheduler) as cluster:
        part = run_parts(graph, model, data, batch, steps, diagnose=diagnose,
                         progress=progress, cluster=cluster)
    res = part.tally.result()
    ann = part.ann_correct / n
    out = {"ann_accuracy": ann, "snn": res["snn"], "samples": n,
           "accuracy_per_step": res["accuracy_per_step"],
           "layer_spikes_per_sample": res["layer_spikes"], "engine": describe(kernels),
           **({"ttfs": res["ttfs"]} if "ttfs" in res else {})}
    obs = part.diagnostics
    if obs is not None and table is not None:
        tmax = max(steps)
        layers = obs.result()
        last = res["snn"][-1]
        verdicts(layers, ann, last["accuracy"], tmax)
        macs = sum(r["macs"] for r in layer_table(import_model(model).graph))
        neurons = sum(r["neurons"] for r in layer_table(graph))
        out["diagnostics"] = {
            "timesteps": tmax,
            "input_steps": obs.t_in or tmax,
            "accuracy_per_step": res["accuracy_per_step"],
            "layers": layers,
            "ann_macs_per_sample": macs,
            "synops_per_sample": last["synops_per_sample"],
            "spikes_per_sample": last["spikes_per_sample"],
            "neuron_updates_per_sample": neurons * tmax,
            "energy": energy(last["spikes_per_sample"], last["synops_per_sample"],
                             neurons * tmax, macs, tmax, table),
        }
    return out


def _grid_values(name: str, text: str) -> list[str]:
    vals = [v.strip() for v in text.split(",")]
    if not any(vals):
        raise SnncError(f"--{name} needs at least one value")
    if not all(vals):
        raise SnncError(f"--{name} has an empty value in '{text}'")
    return list(dict.fromkeys(vals))  # a value given twice is one setting


def sweep_settings(norms: str = "percentile:99.9", shift_bias: str = "no",
                   fits: str = "none", resets: str = "subtract", v_inits: str = "0",
                   calibrate_bias: str = "no", steps: list[int] | None = None,
                   signed: str = "no") -> list[Options]:
    """The grid of compile settings of `snnc sweep`: every combination of the
    comma-separated values (norms may hold several methods, fits 'none' or T1:T2,
    v_inits fractions of the threshold; calibrate_bias no, yes (compiled per T) or
    across (compiled once, fitted over every T of `steps`; not combined with shift bias
    or --fit, which are right at one T only))."""
    try:
        vs = [float(v) for v in _grid_values("v-init", v_inits)]
    except ValueError:
        raise SnncError(f"bad --v-init values '{v_inits}'", hint="e.g. 0,0.5") from None
    flags = {"no": False, "off": False, "yes": True, "on": True}
    shifts, cals = [], []
    for v in _grid_values("shift-bias", shift_bias):
        if v not in flags:
            raise SnncError(f"bad --shift-bias value '{v}'", hint="use no, yes or no,yes")
        shifts.append(flags[v])
    for v in _grid_values("calibrate-bias", calibrate_bias):
        if v not in flags and v != "across":
            raise SnncError(f"bad --calibrate-bias value '{v}'",
                            hint="use no, yes, across or a list such as no,yes,across")
        cals.append(flags.get(v, v))
    signs = []
    for v in _grid_values("signed-neurons", signed):
        if v not in flags:
            raise SnncError(f"bad --signed-neurons value '{v}'", hint="use no, yes or no,yes")
        signs.append(flags[v])
    grid = []
    for norm in _grid_values("norm", norms):
        for fit in _grid_values("fit", fits):
            for sb in dict.fromkeys(shifts):
                for v_init in dict.fromkeys(vs):
                    for reset in _grid_values("reset", resets):
                        for cal in dict.fromkeys(cals):
                            more: dict[str, Any] = {}
                            if cal == "across":
                                ts = sorted(set(steps or []))
                                if sb or fit != "none" or len(ts) < 2:
                                    continue  # right at one T only, or nothing to span
                                more = {"timesteps": ts[-1], "targets": tuple(ts)}
                            for sg in dict.fromkeys(signs):
                                if sg and (reset != "subtract" or fit != "none"):
                                    continue  # signed neurons: subtract, no finite input
                                o = Options(norm=norm, shift_bias=sb, reset=reset,
                                            v_init=v_init,
                                            fit=None if fit == "none" else fit,
                                            calibrate_bias=bool(cal), signed=sg, **more)
                                o.validate()
                                grid.append(o)
    return grid


def setting_name(o: Options) -> str:
    parts = [o.norm]
    if o.fit:
        parts.append(f"fit {o.fit}")
    if o.shift_bias:
        parts.append("shift-bias")
    if o.v_init:
        parts.append(f"v_init {o.v_init:g}")
    if o.reset != "subtract":
        parts.append(f"reset {o.reset}")
    if o.signed:
        parts.append("signed neurons")
    if o.calibrate_bias:
        parts.append("calibrate-bias" + (" across T" if len(o.target_steps()) > 1 else ""))
    return ", ".join(parts)


def sweep(model_path: str | Path, calib: str | Path | None, data: str | Path,
          timesteps: list[int], settings: list[Options], *, batch: int = 100,
          progress: Progress | None = None, workers: int | None = None,
          scheduler: str | None = None) -> dict[str, Any]:
    """Accuracy vs T for several compile settings in one call, to choose settings.

    Every setting is compiled in memory (calibration activations computed once) and
    simulated on the same data. shift-bias (b += theta/2T) and bias calibration depend on
    T, so such a setting without --fit is compiled once per T and read at that T only. A --fit T1:T2
    setting is also read at T1+T2, its natural length. progress: a progress reporter (one
    bar over every simulation; bias calibration reports its own). workers / scheduler:
    the simulations run as (setting, shard) tasks on a Dask cluster (distributed.py),
    the data set shared with the workers once; the numbers are the same."""
    from snnc.distributed import maybe_cluster

    if not timesteps or any(t < 1 for t in timesteps):
        raise SnncError("timesteps must be positive integers, e.g. 8,16,32")
    model = load_model(model_path)
    shape = _input_shape(model)
    dataset = open_data(data, shape, need_labels=True, classes=_output_classes(model))
    calibration = None
    if calib is not None:
        cx = open_data(calib, shape, need_labels=False, what="calibration").head()
    elif any(o.calibrate_bias for o in settings):
        raise SnncError("the sweep needs calibration data for --calibrate-bias yes",
                        hint="pass --calib CALIB.npz, or sweep --calibrate-bias no")
    elif any(o.norm != "clip" for o in settings):
        raise SnncError("the sweep needs calibration data for data-based normalization",
                        hint="pass --calib CALIB.npz, or sweep only --norm clip")
    simulator = None
    steps = sorted(set(timesteps))
    plans: list[list[tuple[Options, list[int]]]] = []
    for opts in settings:
        fit = opts.fit_steps()
        if (opts.shift_bias or opts.calibrate_bias) and fit is None and not opts.targets:
            plans.append([(Options(**{**opts.__dict__, "timesteps": t}), [t]) for t in steps])
        else:
            plans.append([(opts, sorted(set(steps) | ({sum(fit)} if fit else set())))])
    rows = []
    n = len(dataset)
    with maybe_cluster(workers, scheduler) as cluster:
        shared = None if cluster is None else {"data": cluster.share(dataset),
                                               "model": None}
        if calib is not None:  # onnxruntime and bias calibration's simulations on it too
            from snnc.distributed import ClusterSimulator, calibration_runner

            calibration = OnnxCalibration(
                import_model(model).model, cx,
                runner=None if cluster is None else calibration_runner(cluster, cx))
            simulator = None if cluster is None else ClusterSimulator(cluster)
        ann = run_parts_ann(model, dataset, batch, cluster, shared)
        runs = sum(len(p) for p in plans)
        bar = (contextlib.nullcontext(None) if progress is None else
               progress("sweep: simulating", runs * n))
        with bar as update:
            def one_bar(description: str, total: int) -> Any:  # every run on one bar
                return contextlib.nullcontext(update)

            graphs = []
            for o, ts in (run for plan in plans for run in plan):
                _, graph, _ = convert(model, o, calibration=calibration,
                                      progress=progress, simulator=simulator)
                check_simulation(graph, min(batch, n), max(ts))
                graphs.append(graph)
            if cluster is None:
                parts = [run_parts(g, None, dataset, batch, ts, diagnose=False,
                                   progress=None if update is None else one_bar)
                         for g, (_, ts) in zip(graphs, (r for p in plans for r in p))]
            else:  # every (setting, shard) task at once: no worker waits for a setting
                jobs = [part_jobs(g, None, dataset, batch, ts, False, cluster, shared)
                        for g, (_, ts) in zip(graphs, (r for p in plans for r in p))]
                done = cluster.run(eval_part, [j for js in jobs for j in js],
                                   None if update is None else one_bar, "sweep")
                parts, k = [], 0
                for js in jobs:
                    parts.append(merge_parts(done[k:k + len(js)]))
                    k += len(js)
            runs_done = iter(parts)
            for opts, plan in zip(settings, plans):
                results: list[dict[str, Any]] = []
                for _ in plan:
                    results.extend(next(runs_done).tally.result()["snn"])
                rows.append({"setting": setting_name(opts),
                             "options": {"norm": opts.norm, "shift_bias": opts.shift_bias,
                                         "fit": opts.fit, "reset": opts.reset,
                                         "v_init": opts.v_init,
                                         "calibrate_bias": ("across" if opts.targets else
                                                            opts.calibrate_bias),
                                         "signed": opts.signed},
                             "pipeline": opts.pipeline_text(), "snn": results})
    best = []
    for t in sorted({r["timesteps"] for row in rows for r in row["snn"]}):
        cands = [(r["accuracy"], -i, row["setting"]) for i, row in enumerate(rows)
                 for r in row["snn"] if r["timesteps"] == t]
        acc, _, name = max(cands)
        best.append({"timesteps": t, "setting": name, "accuracy": acc})
    return {"ann_accuracy": ann, "samples": n, "settings": rows, "best": best}


def _ann_part(model: onnx.ModelProto, data: Data, lo: int, hi: int, batch: int,
              threads: int = 0) -> int:
    """The ANN's correct predictions on the batches starting in [lo, hi)."""
    sess = ort_session(model, threads)
    right = 0
    for _, xb, yb in data.batches(batch, lo, hi):
        right += int((_ann_top1(sess, xb, batch) == yb).sum())
    return right


def run_parts_ann(model: onnx.ModelProto, data: Data, batch: int, cluster: Any = None,
                  shared: dict[str, Any] | None = None) -> float:
    """The ANN's accuracy on a data set (onnxruntime), batch by batch: in this process or
    as shards on a cluster."""
    n = len(data)
    if cluster is None:
        return _ann_part(model, data, 0, n, batch) / n
    from snnc.distributed import Job, batch_ranges

    dfut = (shared or {}).get("data") or cluster.share(data)
    mfut = cluster.share(model)
    jobs = [Job(data.where(lo, hi), hi - lo, (mfut, dfut, lo, hi, batch, 1))
            for lo, hi in batch_ranges(n, batch, cluster.n_workers)]
    return sum(cluster.run(_ann_part, jobs, None, "ann")) / n
