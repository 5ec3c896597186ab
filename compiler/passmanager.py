"""Pass manager and named pipelines.

A pipeline is a string of passes with options, e.g.
    fold-batchnorm,normalize{method=percentile:99.9},convert-to-snn{reset=subtract}
Named pipelines (PIPELINES) expand to such strings, so they can be printed and pasted.
The IR is verified after every pass.
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any, TextIO

from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.text import print_graph
from snnc.ir.verify import verify
from snnc.passes import PASSES, Pass, PassContext

PIPELINES = {
    "rate": "fold-batchnorm,fold-affine,relu-before-maxpool,normalize,convert-to-snn",
}


def parse_pipeline(text: str) -> list[Pass]:
    text = PIPELINES.get(text, text)
    passes = []
    for m in re.finditer(r"\s*([a-z0-9-]+)(?:\{([^}]*)\})?\s*(?:,|$)", text):
        if not m.group(1):
            continue
        name, opts = m.group(1), m.group(2)
        cls = PASSES.get(name)
        if cls is None:
            raise SnncError(f"unknown pass '{name}'",
                            hint=f"known passes: {', '.join(sorted(PASSES))}")
        kw: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for item in filter(None, (opts or "").split(",")):
            key, _, val = item.partition("=")
            if key not in types:
                raise SnncError(f"pass '{name}' has no option '{key}'")
            default = next(f.default for f in dataclasses.fields(cls) if f.name == key)
            try:
                kw[key] = _option_value(default, val)
            except ValueError:
                raise SnncError(f"pass '{name}': bad value '{val}' for '{key}'") from None
        passes.append(cls(**kw))
    return passes


BOOLS = {"true": True, "1": True, "yes": True, "on": True,
         "false": False, "0": False, "no": False, "off": False}


def _option_value(default: Any, text: str) -> Any:
    """A pass option's text as the type of its default (a boolean from true/false,
    yes/no, on/off or 1/0: bool("False") would be True)."""
    if isinstance(default, bool):
        if text.lower() not in BOOLS:
            raise ValueError(text)
        return BOOLS[text.lower()]
    return text if isinstance(default, str) else type(default)(text)


def pipeline_spec(passes: list[Pass]) -> str:
    return ",".join(p.spec() for p in passes)


def run_passes(graph: Graph, passes: list[Pass], ctx: PassContext, *,
               print_ir_after_all: TextIO | None = None, dump_dir: Path | None = None,
               timings: dict[str, float] | None = None) -> Graph:
    verify(graph)
    if dump_dir is not None:
        dump_dir.mkdir(parents=True, exist_ok=True)
        (dump_dir / "00-import.snnir").write_text(print_graph(graph))
    for i, p in enumerate(passes, start=1):
        missing = p.requires - graph.facts
        if missing:
            raise SnncError(f"internal: pass '{p.name}' needs {sorted(missing)} established "
                            "by an earlier pass")
        t0 = time.perf_counter()
        graph = p.run(graph, ctx)
        graph.facts = (graph.facts - p.invalidates) | p.establishes
        verify(graph)
        if timings is not None:
            timings[p.name] = timings.get(p.name, 0.0) + time.perf_counter() - t0
        if print_ir_after_all is not None:
            print_ir_after_all.write(f"// ----- IR after {p.spec()} -----\n")
            print_ir_after_all.write(print_graph(graph))
        if dump_dir is not None:
            (dump_dir / f"{i:02d}-{p.name}.snnir").write_text(print_graph(graph))
    return graph
