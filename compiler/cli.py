"""The `snnc` command line: a thin layer over snnc.driver.

    snnc MODEL.onnx -o OUT [--calib CALIB.npz] [--norm max|percentile:P]
                          [--reset subtract|zero] [--timesteps T] ...
    snnc check MODEL.onnx
    snnc eval OUT --data DATA.npz --timesteps 8,16,32 [--json FILE] [--diagnostics FILE]
    snnc sweep MODEL.onnx --calib CALIB.npz --data DATA.npz --norm max,percentile:99.9 ...

Errors a user can cause print one line `snnc: error: ...` and exit 2 (no traceback unless
--debug); `snnc check` exits 1 when the model cannot be compiled.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from snnc import __version__
from snnc.ir.errors import SnncError, printable

COMMANDS = ("check", "eval", "sweep", "place", "opt", "export-input", "verify-c")


@contextlib.contextmanager
def _tty_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal (driver.Progress); silent
    otherwise, so build logs and pipes stay clean."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="sample", leave=False) as bar:
        yield bar.update


def _common(p: argparse.ArgumentParser) -> None:
    """The options every command takes."""
    p.add_argument("--max-memory", metavar="SIZE",
                   help="memory budget (bytes or K/M/G/T): sizes that come from the "
                   "input files or the flags are checked against it before anything is "
                   "allocated (default: half the physical memory, or SNNC_MAX_MEMORY)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _set_budget(a: argparse.Namespace) -> None:
    from snnc import budget

    budget.set_limit(None if a.max_memory is None else budget.parse_size(a.max_memory))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line, exit 2
        raise SnncError(f"{message} (see '{self.prog} --help')")


def _compile_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc", description="Compile an ONNX network into a spiking network. "
                "Other commands: 'snnc check MODEL.onnx', 'snnc eval OUT --data D.npz', "
                "'snnc sweep MODEL.onnx --calib C.npz --data D.npz'.")
    p.add_argument("model", help="the ONNX model")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output directory (created; an earlier snnc output there is "
                   "updated: changed files rewritten, files snnc did not write kept; a "
                   "non-empty folder snnc did not write is refused unless --force)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty OUT that snnc did not write (its files are "
                   "kept; one with the name of an snnc output is still refused)")
    p.add_argument("--calib", metavar="CALIB.npz",
                   help="calibration inputs: .npz with x (N, ...) in the model's input layout")
    p.add_argument("--norm", default="percentile:99.9",
                   help="threshold balancing: max, percentile:P (default percentile:99.9), "
                   "channel:P (one lambda per channel; channel = channel:99.9), mse:T or "
                   "channel-mse:T (the lambda whose T-step rate code errs least), or clip "
                   "(Clip bounds only); a layer with a Clip bound always uses it")
    p.add_argument("--shift-bias", action="store_true",
                   help="add theta/(2T) to every neuron's input for T = --timesteps "
                   "(Deng & Gu)")
    p.add_argument("--calibrate-bias", action="store_true",
                   help="bias calibration: simulate the --calib inputs for T steps and add "
                   "to every neuron layer the current that cancels its mean rate error "
                   "(per channel); tuned to T = --timesteps (T1+T2 with --fit)")
    p.add_argument("--signed-neurons", action="store_true",
                   help="signed neurons (simulator only): a hidden neuron fires a -1 "
                   "spike when later input cancels spikes it already fired, so its net "
                   "count follows the accumulated input (cures residual over-firing at "
                   "short T; not for --backend c/place/nir or --arith fixed)")
    p.add_argument("--fit", metavar="T1:T2",
                   help="finite input time: input and biases for T1 steps, then T2 drain "
                   "steps; the network runs T1+T2 steps (e.g. --fit 5:4)")
    p.add_argument("--reset", default="subtract", choices=["subtract", "zero"])
    p.add_argument("--timesteps", default=None, metavar="T[,T...]",
                   help="the T the network will run at (default 64, stored as its "
                   "length); several (8,32,256): T-dependent corrections hold at each, the "
                   "largest is stored. Given without a recipe flag (--norm, --v-init, "
                   "--shift-bias, --calibrate-bias), it turns on --tune auto")
    p.add_argument("--tune", choices=["auto", "off"], default=None,
                   help="auto: split --calib into a fitting and a held-out part, try the "
                   "conversion recipes that apply (normalization, v_init, shift bias, bias "
                   "calibration; flags you give stay fixed) and keep the one whose SNN "
                   "agrees best with the ANN on the held-out part at the --timesteps T "
                   "(default: auto when --timesteps is given with no recipe flag, and "
                   "--calib is given)")
    p.add_argument("--input-coding", default="analog", choices=["analog", "poisson"])
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the Poisson input and the spiking softmax")
    p.add_argument("--readout", default="membrane", choices=["membrane", "spikes", "softmax"],
                   help="membrane potential of the output integrator (default), spike "
                   "count, or Rueckauer's spiking softmax (seeded by --seed)")
    p.add_argument("--v-init", type=float, default=0.0,
                   help="initial membrane as a fraction of the threshold (e.g. 0.5)")
    p.add_argument("--coding", default="rate", choices=["rate", "ttfs"],
                   help="rate coding (default) or time-to-first-spike coding (TDSNN: every "
                   "neuron fires at most once; needs --calib)")
    p.add_argument("--leak", type=float, default=5.0, metavar="L",
                   help="--coding ttfs: the LIF leak constant L (default 5)")
    p.add_argument("--spike-time", default="round", choices=["round", "ceil"],
                   help="--coding ttfs: a value a spikes round(L ln(a+1)) (default: "
                   "unbiased) or ceil(L ln(a+1)) (the paper's) steps after its layer's "
                   "reference step")
    # --- C backend (issue 4) ---
    p.add_argument("--backend", default="sim", metavar="LIST",
                   help="comma-separated backends: sim (always written), c (C99 sources "
                   "in OUT/c/), place (a neuromorphic chip's cores, OUT/place/; needs "
                   "--target) and nir (OUT/nir/, as --emit nir), e.g. --backend c,place")
    p.add_argument("--emit", metavar="nir", action="append", choices=["nir"], default=[],
                   help="also export the spiking network as a NIR graph (OUT/nir/model.nir, "
                   "read by nir.read; what NIR cannot express is listed in "
                   "OUT/nir/unsupported.json; needs pip install 'snnc[nir]'); same as "
                   "adding nir to --backend")
    p.add_argument("--nir-strict", action="store_true",
                   help="with --emit nir: refuse instead of exporting approximations")
    p.add_argument("--arith", default="float", choices=["float", "fixed"],
                   help="arithmetic of the simulator and the C code: float32 (default) or "
                   "fixed point (integer weights, thresholds and membranes)")
    p.add_argument("--c-name", metavar="NAME",
                   help="prefix of the C files and symbols (default: the model file stem)")
    # --- end C backend ---
    p.add_argument("--target", metavar="NAME|FILE.json",
                   help="place backend: a neuromorphic target preset (loihi1, loihi2, "
                   "truenorth, spinnaker1, paicore2, speck, xylo_audio2, generic_mesh) or a "
                   "target description file")
    p.add_argument("--place-seed", type=int, default=0, metavar="S",
                   help="place backend: seed of the placement optimizer (default 0)")
    p.add_argument("--pipeline", metavar="PASSES",
                   help="run exactly these passes instead of the ones the conversion flags "
                   "choose, e.g. \"fold-batchnorm,fold-affine,relu-before-maxpool,"
                   "normalize{method=channel:99.9},convert-to-snn{reset=zero}\" (report.json "
                   "shows the pipeline any compile ran; 'snnc opt --list-passes' lists them)")
    p.add_argument("--config", metavar="FILE",
                   help="compile options from a TOML file (default: ./snnc.toml, else "
                   "[tool.snnc] of ./pyproject.toml); flags given here override it")
    p.add_argument("--depfile", metavar="FILE",
                   help="also write a Make / Ninja depfile: OUT/manifest.json (rewritten "
                   "by every compile) depends on the model, its external data, --calib and "
                   "the config file (for build systems)")
    p.add_argument("--print-ir-after-all", action="store_true",
                   help="print the IR after every pass to stderr")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass to DIR")
    p.add_argument("--time-passes", action="store_true", help="print time spent per pass")
    _common(p)
    p.add_argument("--version", action="version", version=f"snnc {__version__}")
    return p


def _check_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc check", description="Report, node by node, what snnc can "
                "compile. Exit 0 only when the whole model can be compiled.")
    p.add_argument("model")
    _common(p)
    return p


def _eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc eval", description="Simulate a compiled network on labelled "
                "data: accuracy, spikes and SynOps per sample at each number of steps.")
    p.add_argument("out", help="an snnc output directory")
    p.add_argument("--data", required=True, metavar="DATA",
                   help=".npz with x and y, or a folder or glob of .npz shards or .npy "
                   "pairs (x.npy + y.npy), read in batches")
    p.add_argument("--timesteps", default=None,
                   help="comma-separated step counts (default: the compile-time T)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--diagnostics", metavar="FILE",
                   help="write the per-layer diagnostics (rates, saturation, K curve, "
                   "correlation, verdicts, energy) as JSON")
    p.add_argument("--plots", metavar="DIR",
                   help="write PNG plots (accuracy-latency, K curves, layer activity) to "
                   "DIR; needs pip install 'snnc[plot]'")
    p.add_argument("--cost-table", default="horowitz45nm", metavar="NAME|FILE.json",
                   help="energy cost table: horowitz45nm (default), horowitz45nm-int8, or "
                   "a JSON file with synop_pJ, neuron_update_pJ, mac_pJ, source")
    p.add_argument("--no-report", action="store_true",
                   help="do not re-render OUT/report.html with these results (by default "
                   "it gains the accuracy curve, rates, SynOps and energy)")
    p.add_argument("--no-diagnostics", action="store_true",
                   help="only accuracy, spikes and SynOps (faster)")
    p.add_argument("--batch", type=int, default=100)
    _cluster_args(p)
    _common(p)
    return p


def _cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, metavar="N",
                   help="shard the simulations over a local Dask cluster of N worker "
                   "processes (same results as one process); needs pip install "
                   "'snnc[distributed]'")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="shard the simulations over an existing Dask cluster, e.g. "
                   "tcp://host:8786 (workers must see the --data and --calib paths)")


def _sweep_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc sweep", description="Accuracy vs time steps for several "
                "normalization / shift-bias / finite-input-time settings in one call "
                "(every combination of the comma-separated values), to choose settings.")
    p.add_argument("model", help="the ONNX model")
    p.add_argument("--calib", metavar="CALIB.npz", help="calibration inputs (x)")
    p.add_argument("--data", required=True, metavar="DATA",
                   help=".npz with x and y, or a folder or glob of .npz shards or .npy "
                   "pairs (x.npy + y.npy), read in batches")
    p.add_argument("--timesteps", default="8,16,32,64,128",
                   help="comma-separated step counts (default 8,16,32,64,128)")
    p.add_argument("--norm", default="max,percentile:99.9,percentile:99.99",
                   help="normalizations to try (default max,percentile:99.9,"
                   "percentile:99.99)")
    p.add_argument("--shift-bias", default="no,yes", help="no, yes or no,yes (default)")
    p.add_argument("--fit", default="none",
                   help="finite input times to try, e.g. none,5:4,8:8 (default none)")
    p.add_argument("--v-init", default="0,0.5",
                   help="initial membranes to try, as fractions of the threshold "
                   "(default 0,0.5)")
    p.add_argument("--reset", default="subtract", help="subtract, zero or both")
    p.add_argument("--calibrate-bias", default="no",
                   help="no (default), yes, across, or a list (no,yes,across): bias "
                   "calibration compiled per T (yes), or once, fitted to hold at every "
                   "--timesteps T (across)")
    p.add_argument("--signed-neurons", default="no", dest="signed",
                   help="no (default), yes, or no,yes: signed neurons (simulator only)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--batch", type=int, default=100)
    _cluster_args(p)
    _common(p)
    return p


def _place_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc place", description="Place a compiled network (OUT) on a "
                "neuromorphic target: writes OUT/place/ (placement, routes, per-core "
                "parameters and resource report), replacing an earlier placement.")
    p.add_argument("out", help="the snnc output directory")
    p.add_argument("--target", required=True, metavar="NAME|FILE.json",
                   help="a target preset or a target description file")
    p.add_argument("--calib", metavar="CALIB.npz",
                   help="inputs to measure spike rates on (the traffic the placement "
                   "minimizes); without, every neuron counts 1 spike per step")
    p.add_argument("--seed", type=int, default=0, help="seed of the placement optimizer")
    _common(p)
    return p


def _opt_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc opt", description="Run a pass pipeline on a text IR (.snnir) and "
                "print the result (like mlir-opt): 'snnc opt in.snnir --pipeline "
                "\"fold-batchnorm,normalize{method=max}\" -o out.snnir'. Weights are read "
                "inline from the file or from --params, and written inline.")
    p.add_argument("input", nargs="?", help="the text IR (.snnir), - for stdin, or an "
                   "ONNX model (.onnx: its imported IR)")
    p.add_argument("--pipeline", default="", metavar="PASSES",
                   help="comma-separated passes with options, e.g. "
                   "fold-batchnorm,normalize{method=channel:99.9},convert-to-snn{reset=zero}"
                   " (default: none, only parse, verify and print)")
    p.add_argument("-o", "--output", metavar="OUT.snnir", help="output file (default stdout)")
    p.add_argument("--params", metavar="PARAMS.npz",
                   help="weights of the params the text declares without values")
    p.add_argument("--params-out", metavar="PARAMS.npz",
                   help="write the weights here and the text with shapes only")
    p.add_argument("--calib", metavar="CALIB.npz",
                   help="calibration inputs x for the passes that need data (normalize, "
                   "calibrate-bias, the TTFS schedule); activations from the IR interpreter")
    p.add_argument("--print-ir-after-all", action="store_true",
                   help="print the IR after every pass to stderr")
    p.add_argument("--time-passes", action="store_true", help="print time spent per pass")
    p.add_argument("--list-passes", action="store_true",
                   help="list the passes with their options and exit")
    _common(p)
    return p


def _cmd_opt(a: argparse.Namespace) -> int:
    from snnc.driver import opt
    from snnc.fsutil import check_writable, write_file_atomic
    from snnc.ir.text import print_graph

    if a.list_passes:
        print(_list_passes())
        return 0
    if a.input is None:
        raise SnncError("snnc opt needs an input IR file (or - for stdin) (see "
                        "'snnc opt --help')")
    for flag, path in (("-o", a.output), ("--params-out", a.params_out)):
        if path is not None:
            check_writable(path, what=flag, inputs=(a.input, a.params, a.calib))
    text, model = None, None
    if a.input == "-":
        text = sys.stdin.read()
    elif a.input.endswith(".onnx"):
        model = a.input
    else:
        src = Path(a.input)
        if not src.is_file():
            raise SnncError(f"IR file '{src}' does not exist" if not src.exists() else
                            f"'{src}' is not a file", hint="give a .snnir text IR "
                            "(an snnc output holds one: OUT/model.snnir, shapes only; "
                            "pair it with --params OUT/params.npz)")
        try:
            text = src.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise SnncError(f"cannot read '{src}': {e}") from None
    timings: dict[str, float] = {}
    graph = opt(text, a.pipeline, model=model, params=a.params, calib=a.calib,
                print_ir_after_all=sys.stderr if a.print_ir_after_all else None,
                timings=timings, progress=_tty_progress)
    out = print_graph(graph, weights=a.params_out is None)
    if a.params_out is not None:
        import io

        import numpy as np

        buf = io.BytesIO()
        used = sorted({p for op in graph.ops for p in op.param_names()})
        np.savez(buf, **{p: graph.params[p] for p in used})
        write_file_atomic(a.params_out, buf.getvalue())
    if a.output is None:
        sys.stdout.write(out)
    else:
        write_file_atomic(a.output, out.encode())
    if a.time_passes:
        for name, t in timings.items():
            print(f"snnc: {name}: {t * 1000:.1f} ms", file=sys.stderr)
    return 0


def _list_passes() -> str:
    import dataclasses

    from snnc.passes import PASSES

    lines = []
    for name in sorted(PASSES):
        cls = PASSES[name]
        opts = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines.append(f"{name}{'{' + opts + '}' if opts else ''}\n    {doc}")
    return "\n".join(lines)


def _export_input_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc export-input", description="Write samples of a data file as the "
                "INPUT.bin the generated C example reads (OUT/c/main_example.c): float32, "
                "or int16 in the network's input format for --arith fixed; native byte "
                "order, samples one after the other.")
    _c_sample_args(p, count_default=None)
    p.add_argument("-o", "--output", required=True, metavar="INPUT.bin")
    _common(p)
    return p


def _c_sample_args(p: argparse.ArgumentParser, count_default: int | None) -> None:
    """OUT, --data, --first, --count: the samples export-input and verify-c read."""
    p.add_argument("out", help="the snnc output directory (compiled with --backend c)")
    p.add_argument("--data", required=True, metavar="DATA.npz", help=".npz with x")
    p.add_argument("--first", type=int, default=0, help="index of the first sample")
    p.add_argument("--count", type=int, default=count_default,
                   help="number of samples (default: "
                   f"{'all' if count_default is None else count_default})")


def _cmd_export_input(a: argparse.Namespace) -> int:
    from snnc.driver import export_input
    from snnc.fsutil import check_writable, write_file_atomic

    check_writable(a.output, what="-o", inputs=(a.data,))
    data, n = export_input(a.out, a.data, first=a.first, count=a.count)
    write_file_atomic(a.output, data)
    print(f"snnc: wrote {n} sample{'s' if n != 1 else ''} ({len(data)} bytes) to {a.output}; "
          f"run: OUT/c/NAME_example {a.output} [T [TRACE [FIRST]]] (FIRST = {a.first})")
    return 0


def _verify_c_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snnc verify-c", description="Build the generated C example (in a "
                "temporary folder), run it on samples of a data file and compare every "
                "spiking layer's spike count per sample and the readout with the "
                "simulator. Exit 0 when they agree (fixed point: exactly), 1 otherwise.")
    _c_sample_args(p, count_default=100)
    p.add_argument("--timesteps", type=int, help="steps (default: the compile-time T)")
    p.add_argument("--cc", metavar="PATH", help="the C compiler (default: cc, gcc, clang)")
    p.add_argument("--json", metavar="FILE", help="also write the comparison as JSON")
    _common(p)
    return p


def _cmd_verify_c(a: argparse.Namespace) -> int:
    from snnc.driver import verify_c
    from snnc.report import format_table

    if a.json:
        from snnc.fsutil import check_writable

        check_writable(a.json, what="--json", inputs=(a.data,))
    r = verify_c(a.out, a.data, first=a.first, count=a.count, timesteps=a.timesteps,
                 cc=a.cc)
    print(f"C ({r['c_name']}, {r['arith']}, {r['compiler']}) vs simulator: {r['samples']} "
          f"samples, T={r['timesteps']}")
    print(format_table(["layer", "identical spike counts", "C spikes", "sim spikes"],
                       [[x["layer"], f"{x['identical']:.4f}", x["c_spikes"], x["sim_spikes"]]
                        for x in r["layers"]]))
    print(f"spike counts identical: {r['spike_counts_identical']:.4f}; class agreement: "
          f"{r['class_agreement']:.4f}; max readout difference: {r['max_output_diff']:.3g}"
          + (" (integer units)" if r["arith"] == "fixed" else " (of the readout's range)"))
    verdict = ("agree" + (" exactly" if r["arith"] == "fixed" else " within float tolerance")
               if r["ok"] else "DISAGREE")
    print(f"verify-c: {verdict}")
    if a.json:
        from snnc.fsutil import write_file_atomic

        write_file_atomic(a.json, (json.dumps(r, indent=1) + "\n").encode())
    return 0 if r["ok"] else 1


def _cmd_place(a: argparse.Namespace) -> int:
    from snnc.driver import place

    res = place(a.out, a.target, calib=a.calib, seed=a.seed)
    print(res["text"])
    return 0


def _cmd_sweep(a: argparse.Namespace) -> int:
    from snnc.driver import sweep, sweep_settings
    from snnc.report import format_table

    steps = _parse_steps(a.timesteps)
    if a.batch < 1:
        raise SnncError("--batch must be >= 1")
    settings = sweep_settings(a.norm, a.shift_bias, a.fit, a.reset, a.v_init,
                              a.calibrate_bias, steps, signed=a.signed)
    if a.json:
        from snnc.fsutil import check_writable

        check_writable(a.json, what="--json", inputs=(a.model, a.calib, a.data))
    res = sweep(a.model, a.calib, a.data, steps, settings, batch=a.batch,
                progress=_tty_progress, workers=a.workers, scheduler=a.scheduler)
    cols = [b["timesteps"] for b in res["best"]]
    best = {b["timesteps"]: b["accuracy"] for b in res["best"]}
    table = []
    for row in res["settings"]:
        acc = {r["timesteps"]: r["accuracy"] for r in row["snn"]}
        table.append([row["setting"]] + [
            "" if t not in acc else f"{acc[t]:.4f}{'*' if acc[t] == best[t] else ''}"
            for t in cols])
    print(f"ANN accuracy (onnxruntime): {res['ann_accuracy']:.4f} on {res['samples']} "
          "samples; SNN accuracy per setting and T (* best at that T):")
    print(format_table(["setting"] + [f"T={t}" for t in cols], table))
    for b in res["best"]:
        print(f"best at T={b['timesteps']}: {b['setting']} ({b['accuracy']:.4f})")
    if a.json:
        from snnc.fsutil import write_file_atomic

        write_file_atomic(a.json, (json.dumps(res, indent=1) + "\n").encode())
    return 0


def _parse_steps(text: str) -> list[int]:
    try:
        steps = [int(t) for t in text.split(",")]
    except ValueError:
        raise SnncError(f"--timesteps must be comma-separated integers, got "
                        f"'{text}'") from None
    from snnc.budget import MAX_TIMESTEPS

    if not steps or any(not 1 <= t <= MAX_TIMESTEPS for t in steps):
        raise SnncError(f"--timesteps must be integers in [1, {MAX_TIMESTEPS}], got "
                        f"'{text}'")
    return steps


def _cmd_compile(a: argparse.Namespace) -> int:
    from snnc.api import compile_model
    from snnc.driver import Options

    steps = _parse_steps(a.timesteps) if a.timesteps is not None else [64]
    tune = a.tune
    if tune is None:
        recipe_given = (a.norm != "percentile:99.9" or a.v_init != 0.0 or a.shift_bias
                        or a.calibrate_bias or a.signed_neurons or a.fit is not None
                        or a.reset != "subtract"
                        or a.pipeline is not None or a.coding != "rate"
                        or a.arith != "float" or a.input_coding != "analog")
        tune = ("auto" if a.timesteps is not None and a.calib is not None
                and not recipe_given else "off")
    opts = Options(norm=a.norm, reset=a.reset, timesteps=max(steps),
                   targets=tuple(sorted(set(steps))) if len(set(steps)) > 1 else (),
                   tune=tune,
                   input_coding=a.input_coding, seed=a.seed, readout=a.readout,
                   v_init=a.v_init, shift_bias=a.shift_bias, fit=a.fit,
                   calibrate_bias=a.calibrate_bias, signed=a.signed_neurons,
                   backends=tuple(dict.fromkeys(_backends(a.backend) + tuple(a.emit))),
                   nir_strict=a.nir_strict, arith=a.arith, c_name=a.c_name,
                   target=a.target, place_seed=a.place_seed, coding=a.coding,
                   leak=a.leak, spike_time=a.spike_time, pipeline=a.pipeline)
    timings: dict[str, float] = {}
    res = compile_model(a.model, a.output, calib=a.calib, options=opts,
                        print_ir_after_all=sys.stderr if a.print_ir_after_all else None,
                        dump_ir=a.dump_ir, timings=timings, progress=_tty_progress,
                        depfile=a.depfile, config=a.config_file, force=a.force)
    layers = [r for r in res.report["layers"] if r["kind"] in ("if", "ttfsneuron")]
    print(f"snnc: compiled {Path(a.model).name} -> {a.output}: {len(layers)} spiking "
          f"layer{'s' if len(layers) != 1 else ''}, "
          f"{sum(r['neurons'] for r in layers)} neurons, "
          f"{res.report['ann_macs']} ANN MACs/sample")
    tuned = _tune_line(Path(a.output), res.report)
    if tuned:
        print(tuned)
    if "c" in opts.backends:  # C backend (issue 4): the footprint table
        from snnc.backends.c.names import c_prefix

        asked = a.c_name or Path(a.model).stem
        if c_prefix(asked) != asked:
            print(f"snnc: '{asked}' is not a usable C prefix (an identifier that names no "
                  f"generated file); the C code uses '{c_prefix(asked)}' (set it with "
                  "--c-name)")
        print((Path(a.output) / "c" / "footprint.md").read_text(), end="")
    if "place" in opts.backends:
        print((Path(a.output) / "place" / "report.txt").read_text(), end="")
    if "nir" in opts.backends:
        listed = res.report.get("nir_unsupported", [])
        print(f"snnc: NIR graph in {Path(a.output) / 'nir' / 'model.nir'}"
              + (": exact" if not listed else
                 f"; NIR cannot express {len(listed)} feature(s) of this network, exported "
                 "as approximations (nir/unsupported.json; --nir-strict refuses them):"))
        for u in listed:
            print(f"  {u['node']}: {u['feature']} -> {u['exported_as']}")
    if a.time_passes:
        for name, sec in timings.items():
            print(f"  {name:24s} {sec * 1e3:9.1f} ms", file=sys.stderr)
    return 0


def _tune_line(out: Path, report: dict | None = None) -> str | None:
    """One line on the recipe --tune auto chose (from OUT/report.json), or None."""
    if report is None:
        try:
            report = json.loads((out / "report.json").read_text())
        except (OSError, ValueError):
            return None
    t = report.get("tune") if isinstance(report, dict) else None
    if not isinstance(t, dict):
        return None
    try:
        best = next(c for c in t["candidates"] if c["setting"] == t["chosen"])
        scores = ", ".join(f"T={k} {float(v):.3f}" for k, v in best["agreement"].items())
        return (f"recipe (--tune auto, {len(t['candidates'])} tried): {t['chosen']}; "
                f"agreement with the ANN on {int(t['held_out_samples'])} held-out "
                f"calibration inputs: {scores}")
    except (KeyError, TypeError, ValueError, StopIteration):
        return None


def _backends(text: str) -> tuple[str, ...]:
    """--backend LIST -> Options.backends (which puts sim first). C backend (issue 4)."""
    names = tuple(b.strip() for b in text.split(",") if b.strip())
    if not names:
        raise SnncError("--backend needs at least one name, e.g. --backend c")
    return names


def _cmd_check(a: argparse.Namespace) -> int:
    from snnc.driver import Options, convert
    from snnc.frontend import NodeReport, import_model, load_model
    from snnc.report import format_table

    model = load_model(a.model)
    res = import_model(model, strict=False)
    rows = list(res.report)
    problem = None
    if not res.unsupported:
        # a network retrained with G(x) gates converts with temporal coding only
        gated = any(op.kind == "ttfsgate" for op in res.graph.ops)
        try:
            convert(model, Options(coding="ttfs" if gated else "rate"), structure_only=True)
        except SnncError as e:
            problem = e
            for r in rows:
                if r.name == e.node:
                    r.status, r.detail = "unsupported", e.message
                    break
            else:
                rows.append(NodeReport(e.node or "(model)", "", "unsupported", e.message))
    print(format_table(["node", "op", "status", "detail"],
                       [[r.name, r.op_type, r.status, r.detail] for r in rows]))
    counts = {s: sum(r.status == s for r in rows)
              for s in ("converted", "folded", "removed", "unsupported")}
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    ok = counts["unsupported"] == 0 and problem is None
    print(f"snnc: {Path(a.model).name} {'can' if ok else 'cannot'} be compiled")
    return 0 if ok else 1


def _cmd_eval(a: argparse.Namespace) -> int:
    from snnc.driver import evaluate
    from snnc.ir.serialize import load_meta
    from snnc.report import format_table

    meta = load_meta(a.out)  # the weights are read once, by evaluate
    if a.timesteps is None:  # the T values it was compiled for
        tt = meta.get("target_timesteps")
        steps = ([int(t) for t in tt] if isinstance(tt, list) and tt
                 and all(isinstance(t, int) and not isinstance(t, bool) for t in tt)
                 else [int(meta.get("timesteps", 64))])
    else:
        steps = _parse_steps(a.timesteps)
    if meta.get("coding") == "ttfs":
        for flag, given in (("--diagnostics", a.diagnostics), ("--plots", a.plots),
                            ("--cost-table", a.cost_table != "horowitz45nm")):
            if given:
                raise SnncError(f"{flag} does not apply to a temporally coded network (its "
                                "diagnostics are rate coding's)", hint="drop the flag")
    if a.batch < 1:
        raise SnncError("--batch must be >= 1")
    if a.no_diagnostics and (a.diagnostics or a.plots):
        raise SnncError("--diagnostics and --plots need the diagnostics; drop "
                        "--no-diagnostics")
    from snnc.fsutil import check_writable

    for path, what in ((a.json, "--json"), (a.diagnostics, "--diagnostics")):
        if path:
            check_writable(path, what=what, inputs=(a.data,))
    if a.json and a.diagnostics and os.path.abspath(a.json) == os.path.abspath(
            a.diagnostics):
        raise SnncError("--json and --diagnostics name the same file",
                        hint="give each its own file")
    if a.plots:
        check_writable(a.plots, directory=True, what="--plots")
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # before minutes of simulation
            raise SnncError("--plots needs matplotlib",
                            hint="pip install 'snnc[plot]' (or pip install matplotlib)")
    res = evaluate(a.out, a.data, steps, batch=a.batch, progress=_tty_progress,
                   diagnose=not a.no_diagnostics, costs=a.cost_table, workers=a.workers,
                   scheduler=a.scheduler)
    print(f"ANN accuracy (onnxruntime): {res['ann_accuracy']:.4f} on {res['samples']} samples")
    print(f"simulator: {res['engine']}")
    tuned = _tune_line(Path(a.out))
    if tuned:
        print(tuned)
    print(format_table(["T", "accuracy", "spikes/sample", "SynOps/sample"],
                       [[r["timesteps"], f"{r['accuracy']:.4f}",
                         f"{r['spikes_per_sample']:.1f}", f"{r['synops_per_sample']:.1f}"]
                        for r in res["snn"]]))
    tmax = max(steps)
    if "ttfs" in res:
        tt = res["ttfs"]
        print(f"temporal coding: decision after {tt['decision_steps']} steps; at most "
              f"{max(r['spikes_per_neuron'] for r in res['snn']):g} spike per neuron")
        print(format_table(["layer", "release step", "spikes/sample", "mean spike step",
                            "last spike step"],
                           [[r["layer"], r["release_step"], f"{r['spikes_per_sample']:.1f}",
                             "-" if r["mean_spike_step"] is None else
                             f"{r['mean_spike_step']:.2f}",
                             "-" if r["last_spike_step"] is None else r["last_spike_step"]]
                            for r in tt["layers"]]))
    print(f"spikes per sample by layer over T={tmax}:")
    print(format_table(["layer", "spikes/sample"],
                       [[k, f"{v:.1f}"] for k, v in res["layer_spikes_per_sample"].items()]))
    from snnc.fsutil import write_file_atomic

    diag = res.get("diagnostics")
    if diag is not None:
        from snnc.diagnostics import format_diagnostics, write_plots

        print(format_diagnostics(diag))
        if a.plots:
            from snnc.driver import eval_payload

            for path in write_plots(diag, a.plots, eval_payload(res)):
                print(f"wrote {path}")
        if a.diagnostics:
            write_file_atomic(a.diagnostics,
                              (json.dumps(diag, indent=1) + "\n").encode())
    if a.json:
        from snnc.driver import eval_payload

        write_file_atomic(a.json, (json.dumps(eval_payload(res), indent=1) + "\n").encode())
    if not a.no_report:
        from snnc.driver import write_html_report

        try:
            print(f"report: {write_html_report(a.out, res)}")
        except SnncError as e:  # a read-only OUT: the numbers above are the result
            print(f"snnc: note: could not update the HTML report: {e}", file=sys.stderr)
    return 0


#: compile settings a config file may not set (they name this run's files)
NOT_IN_CONFIG = ("model", "output", "force", "config", "depfile", "print_ir_after_all",
                 "dump_ir", "max_memory",
                 "time_passes", "debug", "help", "version")


def _find_config(explicit: str | None) -> Path | None:
    """--config FILE, else ./snnc.toml, else ./pyproject.toml when it has [tool.snnc]."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise SnncError(f"config file '{explicit}' does not exist")
        return Path(explicit)
    if Path("snnc.toml").is_file():
        return Path("snnc.toml")
    if Path("pyproject.toml").is_file() and "snnc" in _read_toml(
            Path("pyproject.toml")).get("tool", {}):
        return Path("pyproject.toml")
    return None


def _read_toml(path: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SnncError(f"cannot read config file '{path}': {e}") from None


def _config_defaults(parser: argparse.ArgumentParser, path: Path) -> dict:
    """The compile options of a config file as argparse defaults (keys are the flags'
    names, '-' or '_'); an unknown key or a value of the wrong kind names the key."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("snnc", {})
    actions = {a.dest: a for a in parser._actions}
    out = {}
    for key, val in data.items():
        dest = key.replace("-", "_")
        if dest == "backends":
            dest = "backend"
        if dest not in actions or dest in NOT_IN_CONFIG:
            raise SnncError(f"config file '{path}': unknown option '{key}'",
                            hint="options are the compile flags without '--', e.g. "
                                 "norm = \"max\", timesteps = 32")
        act = actions[dest]
        if dest == "timesteps" and not isinstance(val, bool):  # 32, [8, 32] or "8,32"
            vals = val if isinstance(val, list) else [val]
            if not vals or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in vals):
                if not isinstance(val, str):
                    raise SnncError(f"config file '{path}': 'timesteps' must be an integer "
                                    "or a list of integers")
            else:
                val = ",".join(map(str, vals))
        if dest == "backend" and isinstance(val, list):
            val = ",".join(map(str, val))
        if isinstance(act, argparse._AppendAction):  # emit = ["nir"] or "nir"
            vals = val if isinstance(val, list) else [val]
            if not all(isinstance(v, str) and v in (act.choices or [v]) for v in vals):
                raise SnncError(f"config file '{path}': '{key}' must be a list of "
                                f"{', '.join(act.choices or ['names'])}")
            out[dest] = vals
            continue
        if isinstance(act, argparse._StoreTrueAction):
            if not isinstance(val, bool):
                raise SnncError(f"config file '{path}': '{key}' must be true or false")
        elif act.type is not None and not isinstance(val, bool):
            try:
                val = act.type(val)
            except (TypeError, ValueError):
                raise SnncError(f"config file '{path}': bad value {val!r} for '{key}'"
                                ) from None
        elif not isinstance(val, str):
            raise SnncError(f"config file '{path}': '{key}' must be a string")
        if act.choices is not None and val not in act.choices:
            raise SnncError(f"config file '{path}': '{key}' must be one of "
                            f"{', '.join(map(str, act.choices))}")
        out[dest] = val
    return out


def _looks_like_command(word: str) -> bool:
    """A first argument that is neither a command, an option nor a model path: a
    mistyped command (`snnc evl`), not a model file, which has a suffix or exists."""
    return (word not in COMMANDS and not word.startswith("-") and "." not in word
            and "/" not in word and not Path(word).exists())


def _did_you_mean(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, COMMANDS, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Printable:
    """stdout through snnc.ir.errors.printable (newlines and tabs kept): whatever snnc
    prints, a name from the model in it cannot drive the terminal."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text, keep="\n\t"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    # numpy's and onnxruntime's warnings are not the user's business: whatever they warn
    # about is either harmless or an error snnc reports itself, in one line
    with contextlib.redirect_stdout(_Printable(sys.stdout)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        if argv[:1] == ["--cmake-dir"]:  # the folder of snnc.cmake, for CMAKE_MODULE_PATH
            print(Path(__file__).resolve().parent / "cmake")
            return 0
        if argv and _looks_like_command(argv[0]):
            raise SnncError(f"unknown command '{argv[0]}'" + _did_you_mean(argv[0]),
                            hint=f"commands: {', '.join(COMMANDS)}; to compile: snnc "
                                 "MODEL.onnx -o OUT (see 'snnc --help')")
        if argv and argv[0] in COMMANDS:
            parser = {"check": _check_parser, "eval": _eval_parser,
                      "sweep": _sweep_parser, "place": _place_parser,
                      "opt": _opt_parser, "export-input": _export_input_parser,
                      "verify-c": _verify_c_parser}[argv[0]]()
            a = parser.parse_args(argv[1:])
            _set_budget(a)
            return {"check": _cmd_check, "eval": _cmd_eval, "sweep": _cmd_sweep,
                    "place": _cmd_place, "opt": _cmd_opt,
                    "export-input": _cmd_export_input, "verify-c": _cmd_verify_c}[argv[0]](a)
        parser = _compile_parser()
        config = _find_config(parser.parse_known_args(argv)[0].config)
        if config is not None:
            parser.set_defaults(**_config_defaults(parser, config))
        a = parser.parse_args(argv)
        _set_budget(a)
        a.config_file = config
        return _cmd_compile(a)
    except SnncError as e:
        if debug:
            raise
        print(f"snnc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("snnc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left: entry() ends quietly
        raise
    except (RecursionError, MemoryError, OSError) as e:
        # the classes no check can foresee everywhere: an input nested deeper than Python
        # recurses, an allocation the budget did not cover, a file-system refusal
        if debug:
            raise
        print(f"snnc: error: {_boundary_message(e)}", file=sys.stderr)
        return 2


def _boundary_message(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return ("an input file is nested too deeply to read (JSON or IR literals nested "
                "thousands of levels)")
    if isinstance(e, MemoryError):
        return (f"out of memory ({printable(str(e))[:200]}); lower --max-memory so that "
                "snnc refuses such sizes up front, or use a smaller --batch")
    assert isinstance(e, OSError)
    where = f" '{printable(e.filename)[:300]}'" if e.filename else ""
    return f"{e.strerror or type(e).__name__}{where}"


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `snnc eval ... | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


