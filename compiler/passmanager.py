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
from typing import Any, TextIO

from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.ir.text import print_graph
from snnc.ir.verify import verify
from snnc.passes import PASSES, Pass, PassContext

PIPELINES = {
    "rate": "fold-batchnorm,fold-affine,relu-before-maxpool,normalize,convert-to-snn",
}


_ITEM = re.compile(r"([a-z0-9-]+)(?:\{([^{}]*)\})?")


def split_pipeline(text: str) -> list[str]:
    """The comma-separated items of a pipeline, commas inside {...} kept."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur.append(ch)
    items.append("".join(cur))
    return items


def parse_pipeline(text: str) -> list[Pass]:
    """The Pass objects of a pipeline string (or a named pipeline); anything that is not
    `name` or `name{opt=value,...}` between commas is an error, never skipped."""
    text = PIPELINES.get(text.strip(), text)
    if not text.strip():  # no passes (snnc opt: parse, verify, print)
        return []
    passes = []
    for item in split_pipeline(text):
        item = item.strip()
        m = _ITEM.fullmatch(item)
        if not m:
            raise SnncError(f"bad pipeline item '{item}' in '{text}'",
                            hint="write name or name{option=value,...} separated by commas, "
                                 "e.g. fold-batchnorm,normalize{method=max},convert-to-snn")
        name, opts = m.group(1), m.group(2)
        cls = PASSES.get(name)
        if cls is None:
            import difflib

            close = difflib.get_close_matches(name, PASSES, n=1)
            raise SnncError(f"unknown pass '{name}'"
                            + (f" (did you mean '{close[0]}'?)" if close else ""),
                            hint=f"known passes: {', '.join(sorted(PASSES))}")
        kw: dict[str, Any] = {}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for opt in opts.split(",") if opts and opts.strip() else []:
            key, eq, val = opt.partition("=")
            key, val = key.strip(), val.strip()
            if key not in defaults:
                known = ", ".join(defaults) or "none"
                raise SnncError(f"pass '{name}' has no option '{key}'",
                                hint=f"its options: {known}")
            if not eq:
                raise SnncError(f"pass '{name}': option '{key}' needs a value ({key}=...)")
            try:
                kw[key] = _option_value(defaults[key], val)
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
               print_ir_after_all: TextIO | None = None, dumps: dict[str, bytes] | None = None,
               timings: dict[str, float] | None = None,
               memo: dict[tuple[str, ...], Any] | None = None) -> Graph:
    """Run the passes in order, checking each one's required facts and verifying the
    graph after it. memo (optional, for many pipelines over one graph and one pass
    context, such as the tuner's candidates): the graph (and the notes the passes wrote)
    after every pipeline prefix, keyed by the prefix's pass specs; a pipeline resumes
    after its longest memoized prefix (passes are pure functions of graph and context)."""
    verify(graph)
    if dumps is not None:  # the IR after every pass, NN-pass.snnir -> text (--dump-ir)
        dumps["00-import.snnir"] = print_graph(graph).encode()
    start = 0
    if memo is not None and dumps is None and print_ir_after_all is None:
        specs = tuple(p.spec() for p in passes)
        for k in range(len(passes), 0, -1):
            hit = memo.get(specs[:k])
            if hit is not None:
                graph, notes = hit[0].copy(), hit[1]
                ctx.notes.update(notes)
                start = k
                break
    else:
        memo = None
    for i, p in enumerate(passes, start=1):
        if i <= start:
            continue
        missing = p.requires - graph.facts
        if missing:
            makers = sorted({q.name for q in PASSES.values() if q.establishes & missing})
            raise SnncError(f"pass '{p.name}' needs a graph that is "
                            f"{' and '.join(sorted(missing))}",
                            hint=f"run {' or '.join(makers) or 'the pass establishing it'} "
                                 "before it in the pipeline")
        t0 = time.perf_counter()
        before = dict(ctx.notes) if memo is not None else None
        graph = p.run(graph, ctx)
        graph.facts = (graph.facts - p.invalidates) | p.establishes
        verify(graph)
        if memo is not None and before is not None:
            prev = memo.get(tuple(q.spec() for q in passes[:i - 1]), (None, {}))[1]
            wrote = {k: v for k, v in ctx.notes.items() if k not in before or
                     before[k] is not v}
            memo[tuple(q.spec() for q in passes[:i])] = (graph.copy(), {**prev, **wrote})
        if timings is not None:
            timings[p.name] = timings.get(p.name, 0.0) + time.perf_counter() - t0
        if print_ir_after_all is not None:
            print_ir_after_all.write(f"// ----- IR after {p.spec()} -----\n")
            print_ir_after_all.write(print_graph(graph))
        if dumps is not None:
            dumps[f"{i:02d}-{p.name}.snnir"] = print_graph(graph).encode()
    return graph
