"""An independent check of a placement: recomputes every core's usage from the graph's
ops themselves (not from the partitioner's per-axis connectivity model) and compares it
with the target's limits and with what the report says.

For a slice, a target indicator is pushed backwards through the ops between the slice's
neurons and the spike sources, as the structural adjoint of each op (every kernel tap and
pool window is a path), which gives, for every source neuron, the number of synapses it
has into the slice. From those counts: input axons, synapses, the synapse memory of the
target's cost model (re-implemented here), and, across slices, each source neuron's
destination cores (output slots, copies).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from snnc.backends.place.targets import Target, class_of, total_cores
from snnc.ir import ops as O
from snnc.ir.graph import Graph


class PlacementError(AssertionError):
    """A placement that breaks a limit or disagrees with its report."""


def _source_of(graph: Graph) -> dict[str, str]:
    out = {}
    for op in graph.ops:
        if isinstance(op, O.Encode):
            out[op.out] = "input"
        elif isinstance(op, (O.IFNeuron, O.SpikeMaxPool, O.SpikingSoftmax)):
            out[op.out] = op.name
        elif isinstance(op, O.Accumulate):
            out[op.out] = op.name
    return out


Win = tuple[np.ndarray, tuple[int, ...]]  # (array, origin) on a value's shape


def _window_back(a: np.ndarray, origin: tuple[int, ...], in_shape: tuple[int, ...],
                 kernel, strides, pads, dil) -> Win:
    """Structural adjoint of a window op on a window of its output: every input element
    gets the sum of `a` over the taps that read it; returns the input window (cropped to
    the input)."""
    oh, ow = a.shape[1:]
    _, y0, x0 = origin
    ih = (oh - 1) * strides[0] + (kernel[0] - 1) * dil[0] + 1
    iw = (ow - 1) * strides[1] + (kernel[1] - 1) * dil[1] + 1
    out = np.zeros((a.shape[0], ih, iw), np.int64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r0, c0 = i * dil[0], j * dil[1]
            out[:, r0:r0 + strides[0] * (oh - 1) + 1:strides[0],
                c0:c0 + strides[1] * (ow - 1) + 1:strides[1]] += a
    ry, rx = y0 * strides[0] - pads[0], x0 * strides[1] - pads[1]
    return _crop(out, (origin[0], ry, rx), in_shape)


def _crop(a: np.ndarray, origin: tuple[int, ...], shape: tuple[int, ...]) -> Win:
    """The part of window (a, origin) inside [0, shape)."""
    sl, org = [], []
    for o, n, size in zip(origin, a.shape, shape):
        lo, hi = max(0, o), min(size, o + n)
        sl.append(slice(lo - o, max(lo, hi) - o))
        org.append(lo)
    return a[tuple(sl)], tuple(org)


def _full(a: np.ndarray, origin: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, np.int64)
    out[tuple(slice(o, o + n) for o, n in zip(origin, a.shape))] = a
    return out


def slice_inputs(graph: Graph, pop_name: str, box) -> dict[str, list[Win]]:
    """Source population -> windows of per-neuron synapse counts into the slice (on the
    source value's shape; several windows of one source add)."""
    ops = {op.name: op for op in graph.ops}
    producers = graph.producers()
    sources = _source_of(graph)
    op = ops[pop_name]
    shape = tuple(graph.shape(op.out))
    result: dict[str, list[Win]] = {}

    def back(value: str, a: np.ndarray, origin: tuple[int, ...]) -> None:
        if value in sources and value != op.out:
            result.setdefault(sources[value], []).append((a, origin))
            return
        p = producers[value]
        vshape = tuple(graph.shape(value))
        if isinstance(p, (O.Current, O.Affine)):
            back(p.x, a, origin)
        elif isinstance(p, O.Add):
            for x in p.xs:
                back(x, a, origin)
        elif isinstance(p, O.Concat):
            start = 0
            for x in p.xs:
                c = graph.shape(x)[0]
                lo, hi = max(start, origin[0]), min(start + c, origin[0] + a.shape[0])
                if lo < hi:
                    back(x, a[lo - origin[0]:hi - origin[0]], (lo - start, *origin[1:]))
                start += c
        elif isinstance(p, O.Pad):
            r = len(p.pads) // 2
            sub, org = _crop(a, tuple(o - p.pads[i] for i, o in enumerate(origin)),
                             tuple(graph.shape(p.x)))
            assert r == len(origin)
            back(p.x, sub, org)
        elif isinstance(p, (O.Flatten, O.Reshape)):
            full = _full(a, origin, vshape).reshape(graph.shape(p.x))
            back(p.x, full, (0,) * full.ndim)
        elif isinstance(p, O.Dense):
            xs = tuple(graph.shape(p.x))
            back(p.x, np.full(xs, int(a.sum()), np.int64), (0,) * len(xs))
        elif isinstance(p, O.AvgPool):
            back(p.x, *_window_back(a, origin, tuple(graph.shape(p.x)), p.kernel, p.strides,
                                    p.pads, (1, 1)))
        elif isinstance(p, O.Conv):
            w = graph.params[p.weight]
            o, cg, kh, kw = w.shape
            og = o // p.groups
            g0, g1 = origin[0] // og, (origin[0] + a.shape[0] - 1) // og
            per_group = np.zeros((g1 - g0 + 1, *a.shape[1:]), np.int64)
            for k in range(a.shape[0]):
                per_group[(origin[0] + k) // og - g0] += a[k]
            spread, org = _window_back(per_group, (0, *origin[1:]), tuple(graph.shape(p.x)),
                                       (kh, kw), p.strides, p.pads, p.dilations)
            back(p.x, np.repeat(spread, cg, axis=0), (g0 * cg, *org[1:]))
        else:
            raise PlacementError(f"cannot check through op kind '{p.kind}'")

    b = box
    if len(shape) == 3:
        ind = np.ones((b[1] - b[0], b[3] - b[2], b[5] - b[4]), np.int64)
        origin: tuple[int, ...] = (b[0], b[2], b[4])
    else:
        ind = np.ones(b[1] - b[0], np.int64)
        origin = (b[0],)
    if isinstance(op, O.SpikeMaxPool):
        result[sources[op.x]] = [_window_back(ind, origin, tuple(graph.shape(op.x)),
                                              op.kernel, op.strides, op.pads, op.dilations)]
    else:
        back(op.x, ind, origin)
    return result


def _sum_windows(wins: list[Win]) -> Win:
    """One window holding the sum of several (their bounding box)."""
    if len(wins) == 1:
        return wins[0]
    lo = [min(o[i] for _, o in wins) for i in range(len(wins[0][1]))]
    hi = [max(o[i] + a.shape[i] for a, o in wins) for i in range(len(lo))]
    out = np.zeros([h - lo_ for lo_, h in zip(lo, hi)], np.int64)
    for a, o in wins:
        out[tuple(slice(oi - li, oi - li + n) for oi, li, n in zip(o, lo, a.shape))] += a
    return out, tuple(lo)


def _region(origin: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(o, o + n) for o, n in zip(origin, shape))


def _memory(target: Target, counts: list[np.ndarray], neurons: int, fan_in: int,
            synapses: int) -> int:
    cost = target.synapse_cost
    model = cost["model"]
    if model == "count":
        return synapses
    if model == "crossbar":
        return fan_in * neurons
    if model == "bytes":
        return synapses * cost["bytes_per_synapse"] + fan_in * cost["row_header_bytes"]
    if model in ("paicore_lcn", "speck_pow2"):
        return 0
    if model == "loihi1_groups":
        idx_need = 0 if neurons <= 1 else math.ceil(math.log2(neurons))
        idx = min(b for b in cost["index_bits"] if b >= idx_need)
        g, header, word = cost["group"], cost["header_bits"], cost["word_bits"]
        total = 0
        for arr in counts:
            for n in arr[arr > 0].tolist():
                per = target.weight_bits + (0 if n == neurons else idx)
                full, last = divmod(n, g)
                total += full * (-(-(g * per + header) // word) * word)
                if last:
                    total += -(-(last * per + header) // word) * word
        return total
    raise PlacementError(model)


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _speck(graph: Graph, op: O.Op) -> dict[str, int]:
    """Kernel, neuron and bias memory of the layer that op's neurons compute (sinabs'
    formulas, from the graph's own conv / dense op and shapes)."""
    producers = graph.producers()
    v = op.x
    while isinstance(producers.get(v), (O.Current, O.Affine)):
        v = producers[v].x
    syn = producers.get(v)
    if isinstance(syn, O.Conv):
        f, cg, kh, kw = graph.params[syn.weight].shape
        c = graph.shape(syn.x)[0]
        h, w = graph.shape(syn.out)[1:]
    elif isinstance(syn, O.Dense):
        f = graph.params[syn.weight].shape[0]
        x = syn.x
        while isinstance(producers.get(x), (O.Flatten, O.Reshape)):
            x = producers[x].x
        shp = graph.shape(x)
        c, kh, kw = (shp[0], shp[1], shp[2]) if len(shp) == 3 else (math.prod(shp), 1, 1)
        h = w = 1
    else:
        return {"kernel_memory": 0, "neuron_memory": math.prod(graph.shape(op.out)),
                "bias_memory": 0}
    return {"kernel_memory": c * _pow2(kh * kw) * _pow2(f),
            "neuron_memory": f * _pow2(h) * _pow2(w),
            "bias_memory": f if syn.bias is not None else 0}


def _kind(op: O.Op) -> str:
    if isinstance(op, O.IFNeuron):
        return "if"
    if isinstance(op, O.SpikeMaxPool):
        return "gate"
    if isinstance(op, O.SpikingSoftmax):
        return "softmax"
    return "readout"


def check(graph: Graph, target: Target, placement: dict[str, Any],
          report_rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every core of `placement` (placement.json) within every limit of its core class;
    every population covered exactly once; the report's numbers equal the recomputed
    ones. Returns the recomputed rows (one per core); raises PlacementError."""
    slices = placement["slices"]
    if any(not 0 <= s["core"] < total_cores(target) for s in slices):
        raise PlacementError("a core outside the target")
    ops = {op.name: op for op in graph.ops}
    sources = _source_of(graph)
    owner: dict[str, np.ndarray] = {}  # population -> core of every neuron (-1: none)
    members: dict[int, list[dict[str, Any]]] = {}
    for s in slices:
        op = ops[s["population"]]
        own = owner.setdefault(s["population"], np.full(_grid(graph, op), -1, np.int64))
        b = s["box"]
        part = own[b[0]:b[1], b[2]:b[3], b[4]:b[5]]
        if (part != -1).any():
            raise PlacementError(f"population {s['population']} covered twice")
        part[...] = s["core"]
        members.setdefault(s["core"], []).append(s)
    expected = {op.name for op in graph.ops
                if isinstance(op, (O.IFNeuron, O.SpikeMaxPool, O.SpikingSoftmax))
                or (isinstance(op, O.Accumulate) and op.x not in sources)}
    if set(owner) != expected:
        raise PlacementError(f"populations not placed: {sorted(expected - set(owner))}; "
                             f"unknown: {sorted(set(owner) - expected)}")
    for name, own in owner.items():
        if (own == -1).any():
            raise PlacementError(f"population {name} is not covered")
    # per core: per source, one window of synapse counts; per source neuron: the cores
    # it reaches; per core: the cores its neurons reach
    inputs: dict[int, dict[str, Win]] = {}
    reach = {name: np.zeros(own.shape, np.int64) for name, own in owner.items()}
    dest_set: dict[int, set[int]] = {c: set() for c in members}
    for core, mine in members.items():
        wins: dict[str, list[Win]] = {}
        for s in mine:
            for src, lst in slice_inputs(graph, s["population"], s["box"]).items():
                wins.setdefault(src, []).extend(lst)
        inputs[core] = {src: _sum_windows(lst) for src, lst in wins.items()}
        for src, (a, org) in inputs[core].items():
            if src == "input":
                continue
            g3 = owner[src].shape
            a3 = a.reshape(a.shape[0], 1, 1) if a.ndim == 1 else a
            o3 = (org[0], 0, 0) if a.ndim == 1 else org
            reg = _region(o3, a3.shape)
            reach[src][reg] += a3 > 0
            for c in np.unique(owner[src][reg][a3 > 0]).tolist():
                dest_set[c].add(core)
            assert len(g3) == 3
    max_dest = target.neuron.get("max_destinations")
    rows = []
    for core in sorted(members):
        mine = members[core]
        by_src = inputs[core]
        neurons = slots = copies = 0
        kinds = set()
        speck = {"kernel_memory": 0, "neuron_memory": 0, "bias_memory": 0}
        for s in mine:
            b = s["box"]
            neurons += (b[1] - b[0]) * (b[3] - b[2]) * (b[5] - b[4])
            op = ops[s["population"]]
            kinds.add(_kind(op))
            part = reach[s["population"]][b[0]:b[1], b[2]:b[3], b[4]:b[5]]
            slots += int(part.sum())
            if max_dest:
                copies += int(np.maximum(part - max_dest, 0).sum())
            if target.synapse_cost["model"] == "speck_pow2":
                for k, v in _speck(graph, op).items():
                    speck[k] += v
        counts = [a[a > 0] for a, _ in by_src.values()]
        fan_in = int(sum(len(c) for c in counts))
        synapses = int(sum(int(c.sum()) for c in counts))
        host = by_src.get("input")
        cls = class_of(target, core)
        if cls.kinds is not None and not kinds <= set(cls.kinds):
            raise PlacementError(f"core {core}: a {sorted(kinds)} population on a "
                                 f"'{cls.name}' core")
        used = {"neurons": neurons + copies, "fan_in": fan_in, "fan_out_slots": slots,
                "dest_cores": len(dest_set[core]),
                "synapse_memory": _memory(target, counts, neurons, fan_in, synapses),
                "host_inputs": 0 if host is None else int(np.count_nonzero(host[0])),
                **speck}
        caps = dict(cls.limits)
        if target.synapse_cost["model"] == "paicore_lcn":
            lcn = 0 if fan_in <= caps["fan_in"] else math.ceil(math.log2(fan_in / caps["fan_in"]))
            caps["fan_in"] = cls.limits["fan_in"] << int(target.synapse_cost.get("max_lcn", 6))
            caps["neurons"] = (cls.limits["neurons"] >> lcn) // target.weight_bits
        for r, v in used.items():
            cap = caps.get(r)
            if cap is not None and v > cap:
                names = " ".join(s["population"] for s in mine)
                raise PlacementError(f"core {core} ({names}): {r} {v} > {cap}")
        rows.append({"core": core, "synapses": synapses,
                     **{f"{r}_used": v for r, v in used.items()}})
    if report_rows is not None:
        by_core = {int(r["core"]): r for r in report_rows}
        if set(by_core) != {r["core"] for r in rows}:
            raise PlacementError("the report's cores differ from the placement's")
        for row in rows:
            rep = by_core[row["core"]]
            for k, v in row.items():
                if k in rep and int(rep[k]) != v:
                    raise PlacementError(f"core {row['core']}: report says {k} = {rep[k]}, "
                                         f"recomputed {v}")
    return rows


def _grid(graph: Graph, op: O.Op) -> tuple[int, int, int]:
    shape = tuple(graph.shape(op.out))
    return shape if len(shape) == 3 else (math.prod(shape), 1, 1)
