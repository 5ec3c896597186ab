"""Partitioning: every population split into slices (boxes of channels x rows x columns;
a flat population is (N, 1, 1)) that each fit one core of the target.

Per core (what it holds: one slice, or several when packed):
  * neurons: the slices' neurons, plus copies where a neuron may target fewer cores than
    its spikes reach (TrueNorth: one target per neuron, so a neuron reaching k cores takes
    k slots);
  * fan_in: distinct input axons, i.e. distinct source neurons (the host's inputs too;
    host_inputs counts those alone, for chips with few input channels: Xylo);
  * fan_out_slots: one output axon per (neuron, destination core) pair (Loihi);
  * dest_cores: distinct destination cores;
  * synapse memory by the target's cost model (synapse_cost.model):
      count          one unit per synapse;
      crossbar       input axons x neurons (a binary crossbar, TrueNorth);
      loihi1_groups  per input axon, its synapses in groups of 64, each group
                     n * (weight bits + index bits) + header bits, rounded up to 64-bit
                     words (nengo-loihi SynapseConfig.bits_per_axon; the index is dropped
                     when the axon reaches every neuron of the core);
      bytes          synapses * bytes_per_synapse + input axons * row_header_bytes;
      paicore_lcn    no memory: fan-in beyond 1,152 axons takes LCN = ceil(log2(fan-in /
                     1,152)) (at most max_lcn), which leaves (512 >> LCN) // weight bits
                     neurons (PAIBox);
      speck_pow2     kernel, neuron and bias memory of a whole layer (speck_memory).

Decision: convolutions are tiled in (channels, rows, columns) and the tiling with the
fewest cores wins, ties to the one with the most channels per tile (a source neuron then
reaches fewer destination cores); candidates are tried in order of core count, each
checked first on an upper bound (the per-axis worst tile) and then exactly on every tile.
Output-side limits (fan-out slots, destinations, copies) depend on how the next layers
were split, so they are checked after all layers are, and a layer that breaks one is
split further. Split layers are sized for the first core class that takes them.
Decision: fan-in beyond a core's limit is an error that names the layer, the limit and
what would fit (no partial-sum neurons: they change an IF network's function).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from snnc.backends.place.netmodel import AxisMap, ChannelMap, NetModel, Population
from snnc.backends.place.targets import CoreClass, Target, ceil_log2
from snnc.ir.errors import SnncError

Box = tuple[int, int, int, int, int, int]  # c0, c1, y0, y1, x0, x1
#: resources of a core, in report order (the last four only where the target has them)
RESOURCES = ("neurons", "fan_in", "fan_out_slots", "dest_cores", "synapse_memory",
             "host_inputs", "kernel_memory", "neuron_memory", "bias_memory")


def grid(pop: Population) -> tuple[int, int, int]:
    return pop.shape if pop.spatial else (pop.neurons, 1, 1)


def box_size(b: Box) -> int:
    return (b[1] - b[0]) * (b[3] - b[2]) * (b[5] - b[4])


@lru_cache(maxsize=200000)
def _axis(m: AxisMap, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(reach mask over the source axis, per-source target counts) of targets [lo, hi)."""
    per = m.per_source(lo, hi)
    return per > 0, per


def _chan(m: ChannelMap, lo: int, hi: int) -> np.ndarray:
    return m.per_source(lo, hi)


@dataclass
class Input:
    """The synapses of one source population into a slice: counts[i, j, k] synapses from
    source neuron (c[i], y[j], x[k]) (every neuron of the source when c is None: dense,
    counts then flat over the source)."""

    source: str
    c: np.ndarray | None
    y: np.ndarray | None
    x: np.ndarray | None
    counts: np.ndarray

    def flat(self, grid3: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted flat source indices, synapse counts) of the source neurons with at least
        one synapse into the slice."""
        if self.c is None:
            idx = np.flatnonzero(self.counts)
            return idx, self.counts[idx]
        cc, yy, xx = np.meshgrid(self.c, self.y, self.x, indexing="ij")
        idx = np.ravel_multi_index((cc, yy, xx), grid3).reshape(-1)
        cnt = self.counts.reshape(-1)
        keep = cnt > 0
        return idx[keep], cnt[keep]


@dataclass
class Usage:
    """What one core holds: its neurons, its input axons (per source population: the flat
    indices of the source neurons and their synapse counts into the core), synapses and
    synapse memory; `extra` carries the output side (fan_out_slots, dest_cores, copies),
    the Speck memories and LCN."""

    neurons: int
    fan_in: int
    synapses: int
    synapse_memory: int
    flat: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def host_inputs(self) -> int:
        f = self.flat.get("input")
        return 0 if f is None else len(f[0])


def grid3(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return shape if len(shape) == 3 else (math.prod(shape), 1, 1)  # type: ignore[return-value]


def usage(model: NetModel, target: Target, pop: Population, box: Box) -> Usage:
    """What the slice `box` of `pop` needs on a core (before output-side limits)."""
    n = box_size(box)
    by_source: dict[str, list] = {}
    synapses = 0
    for p in pop.projections:
        src_n = math.prod(model.shape_of(p.source))
        if p.dense:
            by_source.setdefault(p.source, []).append(("dense", src_n))
            synapses += n * src_n
            continue
        cc = _chan(p.chan, box[0], box[1])
        rc = _axis(p.rows, box[2], box[3])[1]
        wc = _axis(p.cols, box[4], box[5])[1]
        by_source.setdefault(p.source, []).append(("box", cc, rc, wc))
        synapses += int(cc.sum()) * int(rc.sum()) * int(wc.sum())
    flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for src, parts in by_source.items():
        g3 = grid3(model.shape_of(src))
        if any(part[0] == "dense" for part in parts):
            counts = np.zeros(math.prod(g3), np.int64)
            for part in parts:
                if part[0] == "dense":
                    counts += n  # every source neuron, every neuron of the slice
                else:
                    counts += np.einsum("c,h,w->chw", *part[1:]).reshape(-1)
            inp = Input(src, None, None, None, counts)
        else:
            cs = np.add.reduce([p[1] for p in parts])
            rs = np.add.reduce([p[2] for p in parts])
            ws = np.add.reduce([p[3] for p in parts])
            ci, ri, wi = np.flatnonzero(cs), np.flatnonzero(rs), np.flatnonzero(ws)
            counts = np.zeros((len(ci), len(ri), len(wi)), np.int64)
            for _, c, r, w in parts:
                counts += np.einsum("c,h,w->chw", c[ci], r[ri], w[wi])
            inp = Input(src, ci, ri, wi, counts)
        flat[src] = inp.flat(g3)
    fan_in = sum(len(i) for i, _ in flat.values())
    u = Usage(n, fan_in, synapses, 0, flat)
    u.synapse_memory = synapse_memory(target, [c for _, c in flat.values()], n)
    if target.synapse_cost["model"] == "speck_pow2":
        u.extra.update(speck_memory(pop))
    return u


def merge(model: NetModel, target: Target, parts: list[Usage],
          pops: list[Population]) -> Usage:
    """The usage of one core holding several slices: neurons and synapses add, an input
    axon shared by two slices is one axon, synapse memory is recomputed over the union
    (a loihi1 axon group may span both slices), output-side numbers add (an upper bound:
    merging destinations only lowers them; analyse() recomputes them exactly)."""
    if len(parts) == 1:
        return parts[0]
    flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sources = sorted({s for u in parts for s in u.flat})
    for src in sources:
        got = [u.flat[src] for u in parts if src in u.flat]
        if len(got) == 1:
            flat[src] = got[0]
            continue
        idx = np.concatenate([g[0] for g in got])
        cnt = np.concatenate([g[1] for g in got])
        uniq, inv = np.unique(idx, return_inverse=True)
        flat[src] = uniq, np.bincount(inv, weights=cnt).astype(np.int64)
    n = sum(u.neurons for u in parts)
    u = Usage(n, sum(len(i) for i, _ in flat.values()), sum(p.synapses for p in parts), 0,
              flat)
    u.synapse_memory = synapse_memory(target, [c for _, c in flat.values()], n)
    for key in ("fan_out_slots", "dest_cores", "copies", "kernel_memory", "neuron_memory",
                "bias_memory"):
        if any(key in p.extra for p in parts):
            u.extra[key] = sum(p.extra.get(key, 0) for p in parts)
    return u


def group_bits(target: Target, n: np.ndarray, per: np.ndarray | int) -> np.ndarray:
    """loihi1_groups: bits of axons with n synapses of `per` bits each, stored in groups
    of `group` synapses, each group with a header, rounded up to whole words."""
    cost = target.synapse_cost
    g, header, word = int(cost["group"]), int(cost["header_bits"]), int(cost["word_bits"])
    full, last = n // g, n % g
    gbits = -(-(g * per + header) // word) * word
    lbits = np.where(last > 0, -(-(last * per + header) // word) * word, 0)
    return full * gbits + lbits


def synapse_memory(target: Target, counts: list[np.ndarray], n: int) -> int:
    """Synapse memory of a core with n neurons whose input axons carry `counts` synapses
    each (one array per source population), by the target's cost model."""
    cost = target.synapse_cost
    model = cost["model"]
    synapses = int(sum(int(c.sum()) for c in counts))
    fan_in = int(sum(len(c) for c in counts))
    if model == "count":
        return synapses
    if model == "crossbar":
        return fan_in * n
    if model == "bytes":
        return synapses * int(cost["bytes_per_synapse"]) + fan_in * int(
            cost["row_header_bytes"])
    if model == "loihi1_groups":
        need = ceil_log2(n)  # index bits that address the core's neurons
        idx = next((b for b in cost["index_bits"] if b >= need), None)
        if idx is None:
            return 1 << 62  # cannot be addressed: split (reported as synapse memory)
        bits = 0
        for c in counts:
            c = c[c > 0]
            per = np.where(c == n, target.weight_bits, target.weight_bits + idx)
            bits += int(group_bits(target, c, per).sum())
        return bits
    if model in ("paicore_lcn", "speck_pow2"):
        return 0  # no synapse memory of its own: see limits()
    raise AssertionError(model)


def speck_memory(pop: Population) -> dict[str, int]:
    """DYNAP-CNN / Speck memories of a layer (sinabs dynapcnn_layer.py): for a convolution
    of c input channels, f output channels, a kh x kw kernel and an H x W output,
    kernel = c * 2^(ceil_log2(kh * kw) + ceil_log2(f)), neuron = f * 2^(ceil_log2(H) +
    ceil_log2(W)), bias = f (0 without a bias). A dense layer is the convolution whose
    kernel covers its (C, H, W) input (a flat input is C x 1 x 1)."""
    g = pop.attrs.get("geometry")
    if g is None:  # a max-pool gate: refused by the layer rules before this matters
        return {"kernel_memory": 0, "neuron_memory": pop.neurons, "bias_memory": 0}
    c, f, (kh, kw), (h, w) = g["c"], g["f"], g["kernel"], g["out"]
    return {"kernel_memory": c * 2 ** (ceil_log2(kh * kw) + ceil_log2(f)),
            "neuron_memory": f * 2 ** (ceil_log2(h) + ceil_log2(w)),
            "bias_memory": f if g["bias"] else 0}


def limits(target: Target, cls: CoreClass, u: Usage) -> dict[str, tuple[int, int | None]]:
    """resource -> (used, max) for a core of class cls holding u (None: unlimited);
    neurons include the copies of neurons whose spikes reach more cores than a neuron
    may target."""
    out = {"neurons": (u.neurons + u.extra.get("copies", 0), cls.limits["neurons"]),
           "fan_in": (u.fan_in, cls.limits["fan_in"]),
           "fan_out_slots": (u.extra.get("fan_out_slots", 0), cls.limits["fan_out_slots"]),
           "dest_cores": (u.extra.get("dest_cores", 0), cls.limits["dest_cores"]),
           "synapse_memory": (u.synapse_memory, cls.limits["synapse_memory"])}
    if cls.limits["host_inputs"] is not None:
        out["host_inputs"] = (u.host_inputs, cls.limits["host_inputs"])
    for key in ("kernel_memory", "neuron_memory", "bias_memory"):
        if cls.limits[key] is not None:
            out[key] = (u.extra.get(key, 0), cls.limits[key])
    if target.synapse_cost["model"] == "paicore_lcn":
        base = cls.limits["fan_in"] or 1
        lcn = ceil_log2(-(-u.fan_in // base))
        u.extra["lcn"] = lcn
        max_lcn = int(target.synapse_cost.get("max_lcn", 6))
        out["fan_in"] = (u.fan_in, base << max_lcn)
        out["neurons"] = (out["neurons"][0], (cls.limits["neurons"] >> min(lcn, max_lcn))
                          // target.weight_bits)
    return out


def violations(lim: dict[str, tuple[int, int | None]]) -> list[str]:
    return [r for r, (used, cap) in lim.items() if cap is not None and used > cap]


def binding(lim: dict[str, tuple[int, int | None]]) -> tuple[str, float]:
    """The most used resource and its fraction."""
    best, frac = "neurons", -1.0
    for r, (used, cap) in lim.items():
        if cap:
            f = used / cap
            if f > frac:
                best, frac = r, f
    return best, frac


def classes_for(target: Target, kinds: set[str]) -> list[CoreClass]:
    """The core classes that may hold populations of these kinds."""
    return [c for c in target.core_classes if c.kinds is None or kinds <= set(c.kinds)]


def fits(target: Target, u: Usage, kinds: set[str]) -> list[CoreClass]:
    """The core classes on which a core holding u (of populations of these kinds) keeps
    every limit."""
    return [c for c in classes_for(target, kinds) if not violations(limits(target, c, u))]


# ------------------------------------------------------------------ tiling ---------------
def _sizes(n: int) -> list[int]:
    """Distinct tile sizes ceil(n / k) for k = 1..n, largest first."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def tiles(shape: tuple[int, int, int], t: tuple[int, int, int]) -> list[Box]:
    c, h, w = shape
    return [(c0, min(c, c0 + t[0]), y0, min(h, y0 + t[1]), x0, min(w, x0 + t[2]))
            for c0 in range(0, c, t[0]) for y0 in range(0, h, t[1])
            for x0 in range(0, w, t[2])]


def _count(shape: tuple[int, int, int], t: tuple[int, int, int]) -> int:
    return math.prod(-(-s // k) for s, k in zip(shape, t))


def _worst(model: NetModel, pop: Population, t: tuple[int, int, int]) -> Box:
    """A tile whose every axis range has the largest receptive field of its axis (an
    upper bound of every tile's fan-in)."""
    shape = grid(pop)
    box = []
    for axis in range(3):
        size, k = shape[axis], t[axis]
        best, arg = -1, 0
        for lo in range(0, size, k):
            hi = min(size, lo + k)
            reach = 0
            for p in pop.projections:
                if p.dense:
                    continue
                m = (p.chan.reach(lo, hi).sum() if axis == 0 else
                     _axis(p.rows if axis == 1 else p.cols, lo, hi)[0].sum())
                reach += int(m)
            if hi - lo == k and reach > best:
                best, arg = reach, lo
        box += [arg, min(size, arg + k)]
    return tuple(box)  # type: ignore[return-value]


def candidates(pop: Population, cap: int, lower: int) -> list[tuple[int, int, int]]:
    """Tile shapes (channels, rows, columns) of at most `cap` neurons, fewest tiles first."""
    shape = grid(pop)
    out = []
    for tc in _sizes(shape[0]):
        for th in _sizes(shape[1]):
            if tc * th > cap:
                continue
            for tw in _sizes(shape[2]):
                if tc * th * tw <= cap and _count(shape, (tc, th, tw)) >= lower:
                    out.append((tc, th, tw))
    out.sort(key=lambda t: (_count(shape, t), -t[0], t))
    return out


SliceId = tuple[str, int]


@dataclass
class Plan:
    """The slices of every population and their usages, and the cores: each core a list
    of slices (one, unless packed) with its usage."""

    slices: dict[str, list[Box]]
    tile: dict[str, tuple[int, int, int]]
    usage: dict[SliceId, Usage]
    cores: list[list[SliceId]] = field(default_factory=list)
    core_usage: list[Usage] = field(default_factory=list)

    def one_per_core(self) -> None:
        self.cores = [[(name, i)] for name in self.slices
                      for i in range(len(self.slices[name]))]
        self.core_usage = [self.usage[c[0]] for c in self.cores]


def partition(model: NetModel, target: Target, min_tiles: dict[str, int] | None = None,
              fill: bool = False) -> Plan:
    """Split every population (see the module docstring); min_tiles: per population, at
    least this many slices (after an output-side violation); fill: tiles as full as the
    limits allow (_fill), for packing. One slice per core."""
    min_tiles = min_tiles or {}
    plan = Plan({}, {}, {})
    first: dict[str, CoreClass] = {}
    for name, pop in model.populations.items():  # refuse before splitting anything
        classes = classes_for(target, {pop.kind})
        if not classes:
            raise SnncError(f"{target.name} has no core class for a {KIND_NAMES[pop.kind]} "
                            f"(layer {list(pop.shape)})", node=pop.origin,
                            hint=f"core classes: {', '.join(c.name for c in target.core_classes)}")
        first[name] = classes[0]
        if target.split_layers is not False:
            _one_neuron_fits(model, target, classes[0], pop)
    for name, pop in model.populations.items():
        if target.split_layers is False:
            t = grid(pop)
        else:
            t = _choose(model, target, first[name], pop, min_tiles.get(name, 1))
            if fill:
                t = _fill(model, target, first[name], pop, t)
        plan.tile[name] = t
        plan.slices[name] = tiles(grid(pop), t)
        for i, b in enumerate(plan.slices[name]):
            plan.usage[(name, i)] = usage(model, target, pop, b)
    plan.one_per_core()
    return plan


KIND_NAMES = {"if": "spiking layer", "gate": "spiking max-pool", "softmax": "spiking softmax",
              "readout": "readout layer"}


def _one_neuron_fits(model: NetModel, target: Target, cls: CoreClass,
                     pop: Population) -> None:
    """No split helps a layer whose neuron with the widest receptive field breaks a limit
    on its own: refuse it before any layer is split."""
    one = usage(model, target, pop, _worst(model, pop, (1, 1, 1)))
    lim = limits(target, cls, one)
    bad = violations(lim)
    if bad:
        raise fit_error(target, cls, pop, bad[0], lim[bad[0]][0], lim[bad[0]][1],
                        one_neuron=True)


def _choose(model: NetModel, target: Target, cls: CoreClass, pop: Population,
            at_least: int) -> tuple[int, int, int]:
    shape = grid(pop)
    cap = cls.limits["neurons"]
    lower = max(at_least, -(-pop.neurons // cap))
    best_fail: tuple[str, int, int] | None = None
    for t in candidates(pop, cap, lower):
        worst = usage(model, target, pop, _worst(model, pop, t))
        lim = limits(target, cls, worst)
        bad = violations(lim)
        if bad:
            if best_fail is None:
                best_fail = (bad[0], *lim[bad[0]])  # type: ignore[arg-type]
            continue
        if all(not violations(limits(target, cls, usage(model, target, pop, b)))
               for b in tiles(shape, t)):
            return t
    r, used, mx = best_fail or ("neurons", pop.neurons, cap)
    raise fit_error(target, cls, pop, r, used, mx, one_neuron=False)


def _fill(model: NetModel, target: Target, cls: CoreClass, pop: Population,
          t: tuple[int, int, int], tries: int = 3) -> tuple[int, int, int]:
    """The same number of tiles, each as full as the limits allow: grow the tile along
    rows, then columns, then channels while the count stays, so that the last tile of an
    axis is the small one and packs beside other layers (16x24x24 in 4,096-neuron cores:
    rows of 10, 10, 4 instead of 8, 8, 8)."""
    shape = grid(pop)
    cap = cls.limits["neurons"]
    count = _count(shape, t)
    for axis in (1, 2, 0):
        others = math.prod(t) // t[axis]
        top = min(shape[axis], cap // others)
        sizes = [k for k in range(top, t[axis], -1)
                 if _count(shape, t[:axis] + (k,) + t[axis + 1:]) == count][:tries]
        for k in sizes:
            cand = t[:axis] + (k,) + t[axis + 1:]
            if violations(limits(target, cls, usage(model, target, pop,
                                                   _worst(model, pop, cand)))):
                continue
            if all(not violations(limits(target, cls, usage(model, target, pop, b)))
                   for b in tiles(shape, cand)):
                t = cand
                break
    return t


def fit_error(target: Target, cls: CoreClass, pop: Population, resource: str, used: int,
              cap: int | None, *, one_neuron: bool) -> SnncError:
    """The error for a layer that fits no core: the layer, the resource, used vs max, the
    core class and the smallest change that would fit."""
    what = ("even a single neuron of it needs" if one_neuron else
            "no split of it into cores fits:" if target.split_layers else "it needs")
    return SnncError(
        f"{KIND_NAMES.get(pop.kind, pop.kind)} {list(pop.shape)} does not fit {target.name}: "
        f"{what} {resource} {used}, max {cap} on core class '{cls.name}'",
        node=pop.origin, hint=smallest_change(pop, resource, used, cap))


def smallest_change(pop: Population, resource: str, used: int, cap: int | None) -> str:
    """The smallest change of the layer that would fit, in its own terms (input or output
    channels), computed from how the resource grows with them."""
    g = pop.attrs.get("geometry")
    if cap is None or g is None:
        return "choose a larger target"
    c, f, (kh, kw), (h, w) = g["c"], g["f"], g["kernel"], g["out"]
    if resource in ("fan_in", "synapse_memory", "host_inputs"):
        per = used / max(1, c)  # grows linearly with the input channels
        n = int(cap // per) if per else c
        if pop.attrs.get("dense") and per <= 1:
            return f"smallest change that fits: at most {cap} inputs (now {c})"
        if pop.attrs.get("dense") and kh * kw > 1 and n < 1:
            return (f"smallest change that fits: at most {cap} inputs per neuron (now "
                    f"{c * kh * kw}): pool or shrink the input of this dense layer")
        if n >= 1:
            via = (f", each read through {per:g} inputs of a kernel or pooling window"
                   if per > 1 and resource != "synapse_memory" else "")
            return f"smallest change that fits: at most {n} input channels (now {c}{via})"
        return "no number of input channels fits: use a smaller kernel or pooling window"
    if resource == "kernel_memory":
        n = cap // 2 ** (ceil_log2(kh * kw) + ceil_log2(f))
        if n >= 1:
            return f"smallest change that fits: at most {n} input channels (now {c})"
        return f"a {kh}x{kw} kernel with {f} output channels does not fit: reduce them"
    if resource in ("neuron_memory", "neurons"):
        per = 2 ** (ceil_log2(h) + ceil_log2(w)) if resource == "neuron_memory" else h * w
        n = cap // per
        unit = "neurons" if pop.attrs.get("dense") else "output channels"
        if n >= 1:
            return f"smallest change that fits: at most {n} {unit} (now {f})"
        return f"the {h}x{w} output map alone exceeds {cap}: pool or stride earlier"
    if resource == "bias_memory":
        return f"smallest change that fits: at most {cap} output channels (now {f})"
    return f"the layer needs {used} where a core has {cap}; choose a larger target"
