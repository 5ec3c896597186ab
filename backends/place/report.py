"""The placement's files: report.csv (one row per core: for every resource R of the
target the columns R_used and R_max, the binding resource, estimated activity and
status), layers.csv (one row per layer, Lava style), summary.json (cores used against
a lower bound, chips, traffic) and the same as readable text (report.txt)."""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
from snnc.backends.place import partition as P
from snnc.backends.place.netmodel import NetModel, Population
from snnc.backends.place.placement import HOST, Edge, hop_traffic, kinds_of
from snnc.backends.place.targets import Target, ceil_log2, class_of, hops, router_of

PLACEMENT_SCHEMA = "snnc-placement/v1"


def resources(target: Target) -> list[str]:
    """The resources a report shows for this target: the five general ones, and
    host_inputs / kernel / neuron / bias memory where a core class limits them."""
    extra = [r for r in P.RESOURCES[5:]
             if any(c.limits[r] is not None for c in target.core_classes)]
    return list(P.RESOURCES[:5]) + extra


def fan_in_per_neuron(model: NetModel, pop: Population) -> np.ndarray:
    """A lower bound of every neuron's distinct input axons, over its (C, H, W) grid: per
    source, the largest of its projections' per-neuron counts (dense: the whole source)."""
    g = P.grid(pop)
    by_src: dict[str, np.ndarray] = {}
    for p in pop.projections:
        if p.dense:
            f = np.full(g, float(math.prod(model.shape_of(p.source))))
        else:
            f = (p.chan.width.astype(np.float64)[:, None, None]
                 * p.rows.per_target(0, g[1]).astype(np.float64)[None, :, None]
                 * p.cols.per_target(0, g[2]).astype(np.float64)[None, None, :])
        by_src[p.source] = np.maximum(by_src.get(p.source, 0.0), f)
    total = np.zeros(g)
    for f in by_src.values():
        total = total + f
    return total


def lower_bound(model: NetModel, target: Target, plan: P.Plan) -> dict[str, Any]:
    """Cores no placement can go below: per resource, total demand / per-core capacity.
    Neurons: per group of populations that share core classes, their neurons / the
    largest class's neurons (PAICORE: a neuron with fan-in F needs 1 / ((512 >> LCN(F))
    // weight bits) of a core). Synapse memory: every synapse at the least memory the
    cost model can give it (loihi1: the cheapest group per synapse, no index; crossbar:
    a neuron's fan-in at least). A target that keeps one layer per core needs one core
    per layer."""
    cost = target.synapse_cost["model"]
    by: dict[str, int] = {}
    groups: dict[frozenset, list[Population]] = {}
    for pop in model.populations.values():
        key = frozenset(c.name for c in P.classes_for(target, {pop.kind}))
        groups.setdefault(key, []).append(pop)
    n_lb = 0
    for key, pops in groups.items():
        cap = max(c.limits["neurons"] for c in target.core_classes if c.name in key)
        if cost == "paicore_lcn":
            base = target.core_classes[0].limits["fan_in"] or 1
            demand = 0.0
            for pop in pops:
                f = fan_in_per_neuron(model, pop).reshape(-1)
                lcn = np.array([ceil_log2(-(-int(v) // base)) for v in np.unique(f)])
                per = {float(v): (cap >> int(k)) // target.weight_bits
                       for v, k in zip(np.unique(f), lcn)}
                vals, counts = np.unique(f, return_counts=True)
                demand += sum(c / max(per[float(v)], 1) for v, c in zip(vals, counts))
            n_lb += math.ceil(demand - 1e-9)
        else:
            n_lb += math.ceil(sum(p.neurons for p in pops) / cap)
    by["neurons"] = n_lb
    cap_s = target.core_classes[0].limits["synapse_memory"]
    synapses = sum(u.synapses for u in plan.usage.values())
    if cap_s:
        if cost == "count":
            demand = synapses
        elif cost == "bytes":
            demand = synapses * int(target.synapse_cost["bytes_per_synapse"])
        elif cost == "loihi1_groups":
            g = int(target.synapse_cost["group"])
            k = np.arange(1, g + 1)
            per = float((P.group_bits(target, k, target.weight_bits) / k).min())
            demand = synapses * per
        elif cost == "crossbar":
            demand = sum(float(fan_in_per_neuron(model, p).sum())
                         for p in model.populations.values())
        else:
            demand = 0
        if demand:
            by["synapse_memory"] = math.ceil(demand / cap_s - 1e-9)
    if not target.split_layers and not target.pack:
        by["layers"] = len(model.populations)
    return {"cores": max(by.values()), "by_resource": by,
            "neurons": sum(p.neurons for p in model.populations.values()),
            "synapses": synapses}


def _box_text(b: P.Box) -> str:
    return f"c{b[0]}:{b[1]} y{b[2]}:{b[3]} x{b[4]}:{b[5]}"


def _rate_sum(rates: dict[str, np.ndarray], model: NetModel, name: str, b: P.Box) -> float:
    r = rates.get(name)
    if r is None:
        return 0.0
    r = r.reshape(P.grid(model.populations[name]))
    return float(r[b[0]:b[1], b[2]:b[3], b[4]:b[5]].sum())


def core_rows(model: NetModel, target: Target, plan: P.Plan, core: list[int],
              edges: list[Edge], rates: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per used core, in physical core order."""
    in_rate = [0.0] * len(plan.cores)
    synops = [0.0] * len(plan.cores)
    hop_out = [0.0] * len(plan.cores)
    for e in edges:
        in_rate[e.dst] += e.rate
        synops[e.dst] += e.synops
        if e.src != HOST:
            hop_out[e.src] += e.rate * hops(target, core[e.src], core[e.dst])
    res = resources(target)
    rows = []
    for g in sorted(range(len(plan.cores)), key=lambda k: core[k]):
        group = plan.cores[g]
        u = plan.core_usage[g]
        c = core[g]
        cls = class_of(target, c)
        lim = P.limits(target, cls, u)
        chip, x, y = router_of(target, c)
        binding, frac = P.binding(lim)
        bad = P.violations(lim)
        if cls.kinds is not None and not kinds_of(model, group) <= set(cls.kinds):
            bad.append("core_class")
        layers = list(dict.fromkeys(model.populations[n].origin for n, _ in group))
        row: dict[str, Any] = {
            "chip": chip, "core": c, "router_x": x, "router_y": y, "core_class": cls.name,
            "layer": "+".join(layers),
            "slices": " ".join(f"{n}#{i}" for n, i in group),
            "box": " + ".join(_box_text(plan.slices[n][i]) for n, i in group)}
        for r in res:
            used, cap = lim.get(r, (0, None))
            row[f"{r}_used"] = used
            row[f"{r}_max"] = "" if cap is None else cap
        row.update({
            "synapses": u.synapses, "copies": u.extra.get("copies", 0),
            "lcn": u.extra.get("lcn", ""),
            "binding": binding, "binding_pct": round(100 * frac, 1),
            "spikes_in": round(in_rate[g], 4),
            "spikes_out": round(sum(_rate_sum(rates, model, n, plan.slices[n][i])
                                    for n, i in group), 4),
            "synops": round(synops[g], 4),
            "hop_traffic_out": round(hop_out[g], 4),
            "status": "OK" if not bad else "VIOLATION:" + ",".join(bad)})
        rows.append(row)
    return rows


def layer_rows(model: NetModel, plan: P.Plan, rows: list[dict[str, Any]], core: list[int],
               rates: dict[str, np.ndarray], quant: dict[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    by_core = {r["core"]: r for r in rows}
    flat_rate = {k: np.asarray(v, np.float64).reshape(-1) for k, v in rates.items()}
    out = []
    for name, pop in model.populations.items():
        mine = sorted({core[g] for g, group in enumerate(plan.cores)
                       if any(n == name for n, _ in group)})
        mrows = [by_core[c] for c in mine]
        q: dict[str, Any] = {}
        for op in pop.synaptic:
            q = quant.get(op, q)
        syn = 0.0
        for i in range(len(plan.slices[name])):
            for src, (idx, cnt) in plan.usage[(name, i)].flat.items():
                r = flat_rate.get(src)
                syn += float(cnt.sum() if r is None else (r[idx] * cnt).sum())
        worst = max(mrows, key=lambda r: r["binding_pct"]) if mrows else None
        t = plan.tile[name]
        out.append({
            "layer": pop.origin, "population": name, "kind": pop.kind,
            "shape": "x".join(map(str, pop.shape)), "neurons": pop.neurons,
            "slices": len(plan.slices[name]), "cores": len(mine),
            "tile": "x".join(map(str, t)),
            "max_binding": worst["binding"] if worst else "",
            "max_binding_pct": worst["binding_pct"] if worst else 0.0,
            "weight_bits": q.get("weight_bits_used", ""),
            "weight_rel_rms_err": (round(q["weight_rel_rms_err"], 6)
                                   if "weight_rel_rms_err" in q else ""),
            "spikes_out": round(sum(_rate_sum(rates, model, name, b)
                                    for b in plan.slices[name]), 4),
            "synops": round(syn, 4)})
    return out


def summary(model: NetModel, target: Target, plan: P.Plan, core: list[int],
            naive: list[int], edges: list[Edge], rows: list[dict[str, Any]], seed: int,
            rated: bool) -> dict[str, Any]:
    lb = lower_bound(model, target, plan)
    chips = sorted({r["chip"] for r in rows})
    link: dict[tuple, float] = {}
    total_hops = weighted = 0.0
    for e in edges:
        a = 0 if e.src == HOST else core[e.src]
        b = core[e.dst]
        total_hops += hops(target, a, b) * e.rate
        weighted += e.rate
        for key in _links(target, a, b):
            link[key] = link.get(key, 0.0) + e.rate
    placed = hop_traffic(target, core, edges)
    in_order = hop_traffic(target, naive, edges)
    return {
        "target": target.name, "target_status": target.status, "seed": seed,
        "rates": "measured on calibration data" if rated else "1 spike per neuron per step "
                 "(no calibration data)",
        "cores_used": len(rows), "cores_lower_bound": lb["cores"],
        "cores_over_bound": round(len(rows) / max(1, lb["cores"]), 4),
        "lower_bound_by_resource": lb["by_resource"], "chips_used": len(chips),
        "slices": sum(len(b) for b in plan.slices.values()),
        "neurons": lb["neurons"], "synapses": lb["synapses"],
        "total_traffic": round(weighted, 4), "hop_traffic": round(placed, 4),
        "hop_traffic_in_order": round(in_order, 4),
        "hop_traffic_vs_in_order": round(placed / in_order, 4) if in_order else None,
        "max_link_traffic": round(max(link.values(), default=0.0), 4),
        "mean_hops": round(total_hops / weighted, 4) if weighted else 0.0,
        "violations": sum(r["status"] != "OK" for r in rows)}


def _links(target: Target, a: int, b: int) -> list[tuple]:
    """The router links of the X-then-Y route from core a to core b."""
    _, xa, ya = router_of(target, a)
    _, xb, yb = router_of(target, b)
    out = []
    step = 1 if xb >= xa else -1
    for x in range(xa, xb, step):
        out.append((x, ya, x + step, ya))
    step = 1 if yb >= ya else -1
    for y in range(ya, yb, step):
        out.append((xb, y, xb, y + step))
    return out


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    if not rows:
        return b""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1) + "\n").encode()


def text(target: Target, layers: list[dict[str, Any]], summ: dict[str, Any],
         format_table) -> str:
    head = ["layer", "shape", "tile", "cores", "binding", "max %", "w bits", "w rel err"]
    body = [[r["layer"], r["shape"], r["tile"], r["cores"], r["max_binding"],
             r["max_binding_pct"], r["weight_bits"], r["weight_rel_rms_err"]] for r in layers]
    s = summ
    hv = s["hop_traffic_vs_in_order"]
    return "\n".join([
        f"placement on {target.name} ({target.status}; rates: {s['rates']}):", "",
        format_table(head, body), "",
        f"cores {s['cores_used']} (lower bound {s['cores_lower_bound']}: "
        f"{s['cores_over_bound']}x), chips {s['chips_used']}, violations {s['violations']}",
        f"traffic {s['total_traffic']} msgs/step, hop-weighted {s['hop_traffic']} "
        f"({'-' if hv is None else f'{hv}x'} of in-order placement), max link "
        f"{s['max_link_traffic']}, mean hops {s['mean_hops']}"])
