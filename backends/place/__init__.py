"""The neuromorphic backend: partition a spiking network into core slices of a target chip
(partition.py), place them on its mesh minimizing hop-weighted spike traffic
(placement.py), and report every core's resources against the target's limits
(report.py). Targets are data: presets/*.json or a user's file (targets.py).

OUT/place/ holds placement.json (slice -> chip, core, router), routes.json (source ->
destination cores: axons, rate, hops), core_params.json (per core: the slice, weight
format and quantization), report.csv (one row per core; R_used / R_max for every
resource R, binding resource, activity, status), layers.csv (one row per layer),
summary.json and report.txt.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from snnc.backends.place import netmodel, placement, report
from snnc.backends.place.targets import Target, class_of, load_target, preset_names, router_of
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph
from snnc.passes import PassContext
from snnc.passes.quantize import Quantize

OUT_DIR = "place"

__all__ = ["PlaceBackend", "load_target", "placeable", "preset_names", "spike_rates"]


def spike_rates(model: netmodel.NetModel, counts: dict[str, np.ndarray], steps: int,
                x: np.ndarray | None) -> dict[str, np.ndarray]:
    """Spikes per neuron per step of every population, from simulated spike counts
    ((N, ...) per spike source) over `steps` steps; a max-pool gate passes its window's
    most active input, so its rate is the window maximum of its source's rates; the host
    sends one message per nonzero input per step."""
    rates: dict[str, np.ndarray] = {}
    for name, pop in model.populations.items():
        if name in counts:
            rates[name] = counts[name].mean(axis=0) / steps
        elif pop.kind == "gate":
            p = pop.projections[0]
            src = rates.get(p.source)
            if src is None:
                continue
            g = np.zeros(pop.shape)
            for y in range(pop.shape[1]):
                rm = p.rows.reach(y, y + 1)
                for x_ in range(pop.shape[2]):
                    cm = p.cols.reach(x_, x_ + 1)
                    g[:, y, x_] = src[:, rm][:, :, cm].reshape(pop.shape[0], -1).max(axis=1)
            rates[name] = g
        elif pop.kind == "readout":
            rates[name] = np.zeros(pop.shape)
    if x is not None:
        rates["input"] = (np.asarray(x) != 0).mean(axis=0)
    return rates


def placeable(graph: Graph) -> None:
    """Refuse a graph this backend cannot place (before any work on it)."""
    if graph.meta.get("coding") == "ttfs":
        raise SnncError("the place backend does not take temporally coded networks yet",
                        hint="compile with --coding rate to place the network")


class PlaceBackend:
    """Writes OUT/place/ (see the module docstring). rates: spikes per neuron per step of
    every population (spike_rates), or None for 1 per step; format_table: the
    compiler's table formatter (passed in: a backend imports nothing of the compiler)."""

    name = "place"
    requires = frozenset({"spiking"})

    def __init__(self, target: str | Target, *, rates: dict[str, np.ndarray] | None = None,
                 seed: int = 0, format_table: Callable[[list[str], list[list[Any]]], str]):
        self.target = load_target(target) if isinstance(target, str) else target
        self.rates = rates
        self.seed = seed
        self.format_table = format_table
        self.summary: dict[str, Any] = {}
        self.text = ""

    def emit(self, graph: Graph) -> dict[str, bytes]:
        placeable(graph)
        t = self.target
        model = netmodel.build(graph)
        if not model.populations:
            raise SnncError("the network has no spiking populations to place",
                            hint="the place backend takes rate-coded networks "
                                 "(integrate-and-fire layers)")
        rates = self.rates or {}
        plan, edges = placement.plan_and_analyse(model, t, rates)
        core, naive = placement.place(model, t, plan, edges, self.seed)
        quant = _quantization(graph, t)
        rows = report.core_rows(model, t, plan, core, edges, rates)
        layers = report.layer_rows(model, plan, rows, core, rates, quant)
        self.summary = report.summary(model, t, plan, core, naive, edges, rows, self.seed,
                                      bool(self.rates))
        self.text = report.text(t, layers, self.summary, self.format_table)
        order = {name: k for k, name in enumerate(model.populations)}
        slices = []
        for g in sorted(range(len(plan.cores)), key=lambda k: core[k]):
            chip, x, y = router_of(t, core[g])
            for name, i in sorted(plan.cores[g], key=lambda s: (order[s[0]], s[1])):
                slices.append({"population": name, "layer": model.populations[name].origin,
                               "slice": i, "box": list(plan.slices[name][i]),
                               "core": core[g], "chip": chip, "router": [x, y],
                               "core_class": class_of(t, core[g]).name})
        by_core: dict[int, list[dict[str, Any]]] = {}
        for s in slices:
            by_core.setdefault(s["core"], []).append(s)
        params = {f"{r['chip']}/{r['core']}": {
            "core_class": r["core_class"],
            "slices": [_slice_params(model, s, quant, t) for s in by_core[r["core"]]]}
            for r in rows}
        files = {
            "placement.json": report.json_bytes({
                "schema": report.PLACEMENT_SCHEMA, "target": t.name, "seed": self.seed,
                "box_axes": ["c0", "c1", "y0", "y1", "x0", "x1"], "slices": slices}),
            "routes.json": report.json_bytes(placement.routes(t, plan, core, edges)),
            "core_params.json": report.json_bytes(params),
            "report.csv": report.csv_bytes(rows),
            "layers.csv": report.csv_bytes(layers),
            "summary.json": report.json_bytes(self.summary),
            "report.txt": (self.text + "\n").encode()}
        return {f"{OUT_DIR}/{k}": v for k, v in files.items()}


def _quantization(graph: Graph, t: Target) -> dict[str, dict[str, Any]]:
    """Per synaptic op (IR name): the fixed-point lowering's stats at the target's weight
    bits (the existing quantize pass), or {} when the graph cannot be lowered."""
    if "fixed-point" in graph.facts:
        stats = graph.meta.get("fixed_point", {}).get("layers", [])
    else:
        ctx = PassContext()
        try:
            Quantize(weight_bits=min(16, max(2, t.weight_bits))).run(graph, ctx)
        except SnncError:  # a graph quantize refuses (e.g. spiking softmax): no stats
            return {}
        stats = ctx.notes.get("quantization", [])
    by_origin = {s["op"]: s for s in stats if "weight_exp" in s}
    return {op.name: by_origin[op.where()] for op in graph.ops
            if op.where() in by_origin and op.kind in ("conv", "dense")}


def _slice_params(model: netmodel.NetModel, s: dict[str, Any],
                  quant: dict[str, dict[str, Any]], t: Target) -> dict[str, Any]:
    pop = model.populations[s["population"]]
    q: dict[str, Any] = {}
    for op in pop.synaptic:
        q = quant.get(op, q)
    b = s["box"]
    return {"layer": s["layer"], "population": s["population"], "slice": s["slice"],
            "box": b, "neurons": (b[1] - b[0]) * (b[3] - b[2]) * (b[5] - b[4]),
            "weight_bits": t.weight_bits, "weight_exp": q.get("weight_exp"),
            "weight_bits_used": q.get("weight_bits_used"),
            "weight_rel_rms_err": q.get("weight_rel_rms_err")}
