"""The C backend: a spiking IR graph as portable C99 for embedded targets.

`snnc MODEL.onnx -o OUT --backend c` writes OUT/c/:
  <name>.h          the only header a user includes (sizes, <name>_ctx, init/reset/step/run)
  <name>.c          the network, layer by layer (templates/<kind>.c.j2 per op kind)
  <name>_weights.c  const weight arrays (flash)
  main_example.c    reads inputs from a binary file, prints outputs and spike counts
  Makefile, CMakeLists.txt
  footprint.json, footprint.md   flash / RAM per layer and total (+ Cortex-M4 sizes when
                                 arm-none-eabi-gcc is installed)
Arithmetic follows the graph: float32, or fixed point after the `quantize` pass (fact
"fixed-point"), in which case the C code and the NumPy runtime agree spike for spike.

plan.py decides every size, buffer and loop bound; the jinja2 templates (StrictUndefined)
only format. TEMPLATES maps every op kind that can appear in a spiking graph to its
template; UNSUPPORTED lists, with a reason, every other op kind of ir.ops.OPS
(tests/test_c_backend.py fails when a kind is in neither).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from snnc.backends.c.names import c_float, c_int, c_prefix, comment
from snnc.backends.c.plan import STEP_OWNER, Plan, plan_graph, spike_layer_names
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
OUT_DIR = "c"
#: op kind -> its C template (templates/<file>)
TEMPLATES: dict[str, str] = {k: f"{k}.c.j2" for k in (
    "encode", "current", "if", "spikemaxpool", "accumulate", "conv", "dense", "affine",
    "avgpool", "add", "concat", "flatten", "reshape", "pad")}
_ANN_ONLY = "ANN-level op: lowered before any backend runs (convert-to-snn / fold-batchnorm)"
#: op kind -> why the C backend has no template for it
UNSUPPORTED: dict[str, str] = {
    "batchnorm": _ANN_ONLY, "relu": _ANN_ONLY, "clip": _ANN_ONLY, "maxpool": _ANN_ONLY,
    "softmax": _ANN_ONLY,
    "spikesoftmax": "the spiking softmax readout needs exp() and a float64 categorical "
                    "draw to match the simulator; use --readout membrane or spikes",
    **{k: "temporal coding (--coding ttfs) has no fixed-point form yet, so C code could "
          "not match the simulator spike for spike; use --coding rate for C"
       for k in ("ttfsencode", "ttfsneuron", "ttfsmaxpool", "ttfsreadout")},
    "ttfsgate": _ANN_ONLY,
}
#: context members that are neuron state (the rest are per-step buffers)
STATE = ("membranes", "input spike counts", "spike budgets used")
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-Os", "-std=c99", "-ffunction-sections",
             "-fdata-sections"]


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    env.globals["bval"] = _bval
    return env


def _bval(b: dict[str, Any], c: str, i: str) -> str:
    """The C expression reading a broadcast constant at channel c / element i."""
    if b["mode"] == "scalar":
        return b["lit"]
    return f"{b['sym']}[{c if b['mode'] == 'channel' else i}]"


def _array_body(values: np.ndarray, fixed_int: bool) -> str:
    if fixed_int:
        items = [c_int(v) for v in values.tolist()]
    else:
        items = [c_float(v) for v in values.astype(np.float32).tolist()]
    per = 12
    return "\n".join("    " + ", ".join(items[i:i + per]) + ","
                     for i in range(0, len(items), per)) or "    0"


class CBackend:
    """Writes OUT/c/ (see the module docstring)."""

    name = "c"
    requires = frozenset({"spiking"})

    def __init__(self, name: str = "model", source: str = "an ONNX model", *,
                 version: str, format_table: Callable[[list[str], list[list[Any]]], str]):
        """version: snnc's, written into the generated files; format_table(header, rows):
        the compiler's text-table formatter, for footprint.md (passed in: a backend
        imports nothing from the compiler)."""
        self.c_name = c_prefix(name)
        self.source = source
        self.version = version
        self.format_table = format_table
        self.footprint_totals: dict[str, Any] = {}

    def emit(self, graph: Graph) -> dict[str, bytes]:
        # the generated code indexes values and weights with 32-bit integers and counts
        # steps in 32 bits: larger sizes are refused, never wrapped
        for op in graph.ops:
            sizes = [(f"value '{op.out}'", math.prod(graph.shape(op.out)))]
            sizes += [(f"param '{p}'", int(graph.params[p].size)) for p in op.param_names()]
            for what, n in sizes:
                if n >= 2**31:
                    raise op.error(f"{what} has {n} elements; the C backend indexes with "
                                   "32-bit integers (at most 2^31 - 1)")
        if int(graph.meta.get("timesteps", 0)) >= 2**32:
            raise SnncError("the C backend counts time steps in 32 bits (T < 2^32)")
        plan = plan_graph(graph, self.c_name)
        files = render(plan, graph, self.source, self.version)
        fp = footprint(plan, files)
        self.footprint_totals = fp["total"]
        fp["quantization"] = graph.meta.get("fixed_point", {}).get("layers", None)
        files["footprint.json"] = (json.dumps(fp, indent=1) + "\n").encode()
        files["footprint.md"] = (format_footprint(fp, self.format_table) + "\n").encode()
        return {f"{OUT_DIR}/{k}": v for k, v in sorted(files.items())}


def render(plan: Plan, graph: Graph, source: str, version: str) -> dict[str, bytes]:
    """The C sources of a plan: {file name: bytes}."""
    env = _env()
    n = plan.name
    init_blocks, const_blocks, step_blocks = [], [], []
    for p in plan.ops:
        tmpl = env.get_template(TEMPLATES[p["kind"]])
        init = tmpl.render(p=p, part="init")
        if init.strip():
            init_blocks.append(init)
        run = tmpl.render(p=p, part="run")
        (const_blocks if p["const"] else step_blocks).append(run)
    code = init_blocks + const_blocks + step_blocks
    ctx_members = ordered_members(plan)
    members = [{"ctype": m.ctype, "ident": m.ident, "size": m.size,
                "comment": comment(m.what if m.owner.startswith("\0")
                                   else f"{m.what} of {m.owner}")} for m in ctx_members]
    arrays = [{"ctype": a.ctype, "symbol": a.symbol, "size": int(a.values.size),
               "comment": comment(f"{a.what} of {a.owner}"),
               "body": _array_body(a.values, a.ctype != "float")} for a in plan.arrays]
    common = {"name": n, "version": version,
              "source": comment(source),
              "fixed": plan.fixed, "n_spike_layers": len(plan.spike_layers),
              "input_size": plan.input_size, "output_size": plan.output_size}
    header = env.get_template("header.h.j2").render(
        **common, guard=f"{n.upper()}_H_INCLUDED", input_shape=list(plan.input_shape),
        output_shape=list(plan.output_shape), timesteps=plan.timesteps,
        readout=comment({"membrane": "the output layer's input current",
                         "spikes": "spike counts"}.get(str(graph.meta.get("readout")),
                                                       "of the output value")),
        input_bits=plan.input_bits, output_scale=c_float(plan.output_scale).rstrip("f"),
        members=members, ctx_bytes=ctx_bytes(plan))
    source = env.get_template("network.c.j2").render(
        **common, arrays=arrays, spike_names=spike_layer_names(plan),
        uses_poisson=plan.uses_poisson, init_blocks=init_blocks, const_blocks=const_blocks,
        # helpers are emitted only where used (unused static functions are warnings)
        uses_sat32=any(f"{n}_sat32(" in b for b in code),
        uses_sat_add=any(f"{n}_sat_add(" in b for b in code),
        step_blocks=step_blocks, output_ptr=plan.output_ptr)
    weights = env.get_template("weights.c.j2").render(**common, arrays=arrays)
    example = env.get_template("main_example.c.j2").render(
        **common, input_type=plan.types["input"])
    return {f"{n}.h": header.encode(), f"{n}.c": source.encode(),
            f"{n}_weights.c": weights.encode(), "main_example.c": example.encode(),
            "Makefile": env.get_template("Makefile.j2").render(name=n).encode(),
            "CMakeLists.txt": env.get_template("CMakeLists.txt.j2").render(name=n).encode()}


ALIGN = {"int64_t": 8, "float": 4, "int32_t": 4, "uint32_t": 4, "int16_t": 2, "uint16_t": 2,
         "uint8_t": 1}


def ordered_members(plan: Plan) -> list[Any]:
    """Struct members, largest alignment first (no padding between them)."""
    return sorted(plan.members, key=lambda m: -ALIGN[m.ctype])


def ctx_bytes(plan: Plan) -> int:
    """sizeof(<name>_ctx) on a target where a type's alignment is its size (the header
    fields t, sample, spikes[] come first)."""
    size = 4 * (2 + max(1, len(plan.spike_layers)))
    big = 4
    for m in ordered_members(plan):
        a = ALIGN[m.ctype]
        big = max(big, a)
        size = -(-size // a) * a + m.nbytes
    return -(-size // big) * big


def footprint(plan: Plan, files: dict[str, bytes]) -> dict[str, Any]:
    """Flash (weights, code) and RAM (state, buffers) per layer and in total; Cortex-M4
    object sizes when arm-none-eabi-gcc is installed."""
    layers = [dict(r) for r in plan.layers]
    weights = sum(a.nbytes for a in plan.arrays)
    ram = ctx_bytes(plan)
    state = sum(m.nbytes for m in plan.members if m.what in STATE)
    arenas = {m.ctype: m.nbytes for m in plan.members if m.owner == STEP_OWNER}
    spikes = arenas.pop("uint8_t", 0)
    total: dict[str, Any] = {"flash_weights_bytes": weights, "ram_ctx_bytes": ram,
                             # neuron state: membranes, max-pool counts, spike budgets
                             "ram_state_bytes": state,
                             # peak of the spike buffers live within a step
                             "ram_spike_buffer_bytes": spikes,
                             # peak of the current / scatter-sum buffers within a step
                             "ram_current_buffer_bytes": sum(arenas.values()),
                             # the rest: input copy, currents computed once per input,
                             # the readout's running sum, padded values, step counters
                             "ram_other_bytes": ram - state - spikes - sum(arenas.values()),
                             "arithmetic": "fixed" if plan.fixed else "float"}
    arm = arm_sizes(plan.name, files, weights)
    if arm is not None:
        total["cortex_m4"] = arm
        total["flash_code_bytes"] = arm["code_bytes"]
    else:
        total["cortex_m4"] = None
        total["flash_code_bytes"] = None
    return {"name": plan.name, "layers": layers, "total": total}


#: a weights file larger than this is not cross-compiled just to be measured (its flash
#: size is the arrays' bytes, which the measurement equals on every model we tried; tested)
ARM_MEASURE_WEIGHTS_MAX = 8 * 2 ** 20


def arm_sizes(name: str, files: dict[str, bytes], weights_bytes: int | None = None
              ) -> dict[str, Any] | None:
    """Compile the network for a Cortex-M4 (-mcpu=cortex-m4 -mthumb -Os, compile only) and
    read `arm-none-eabi-size` of the objects; None without the toolchain. A weights source
    above ARM_MEASURE_WEIGHTS_MAX is not compiled: its size is `weights_bytes`."""
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    if gcc is None or size is None:
        return None
    out: dict[str, Any] = {"flags": " ".join(ARM_FLAGS)}
    srcs = [(f"{name}.c", "code")]
    if weights_bytes is None or len(files[f"{name}_weights.c"]) <= ARM_MEASURE_WEIGHTS_MAX:
        srcs.append((f"{name}_weights.c", "weights"))
        out["weights_measured"] = True
    else:
        out.update(weights_bytes=weights_bytes, weights_bss_bytes=0, weights_measured=False)
    with tempfile.TemporaryDirectory(prefix="snnc-arm-") as tmp:
        d = Path(tmp)
        for k, v in files.items():
            (d / k).write_bytes(v)
        for src, key in srcs:
            obj = d / (src + ".o")
            r = subprocess.run([gcc, *ARM_FLAGS, "-c", "-o", str(obj), str(d / src)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SnncError(f"internal: arm-none-eabi-gcc failed on {src}: "
                                f"{r.stderr.strip()[:500]}")
            r = subprocess.run([size, str(obj)], capture_output=True, text=True, check=True)
            text, data, bss = (int(v) for v in r.stdout.splitlines()[1].split()[:3])
            out[f"{key}_bytes"] = text + data
            out[f"{key}_bss_bytes"] = bss
    return out


def format_footprint(fp: dict[str, Any],
                     format_table: Callable[[list[str], list[list[Any]]], str]) -> str:
    """The footprint as a table (also printed by the CLI)."""
    # ONNX names can hold anything: one printable line each (the comment() escaping)
    rows = [[comment(r["layer"]), r["kind"], r["flash_bytes"], r["ram_bytes"],
             r["step_buffer_bytes"]]
            for r in fp["layers"] if r["flash_bytes"] or r["ram_bytes"] or
            r["step_buffer_bytes"]]
    t = fp["total"]
    rows.append(["total", t["arithmetic"], t["flash_weights_bytes"], t["ram_ctx_bytes"], ""])
    lines = [f"C footprint of {fp['name']} (bytes; flash = const weights, RAM = context "
             "struct; step buffers live within a step and share the 'step buffers' RAM):",
             "", format_table(["layer", "kind", "flash", "RAM", "step buffers"], rows), "",
             f"RAM = neuron state {t['ram_state_bytes']} + spike buffers "
             f"{t['ram_spike_buffer_bytes']} + current buffers "
             f"{t['ram_current_buffer_bytes']} + input, per-input constants and readout "
             f"{t['ram_other_bytes']} = {t['ram_ctx_bytes']} B; no heap"]
    if t["cortex_m4"]:
        a = t["cortex_m4"]
        how = ("" if a.get("weights_measured", True) else
               " (the arrays' size: too large to cross-compile for a measurement)")
        lines += ["", f"Cortex-M4 ({a['flags']}): code {a['code_bytes']} B, weights "
                  f"{a['weights_bytes']} B{how} flash; context {t['ram_ctx_bytes']} B RAM "
                  "(in the caller's context)"]
    else:
        lines += ["", "Cortex-M4: arm-none-eabi-gcc not found, code size not measured"]
    return "\n".join(lines)
