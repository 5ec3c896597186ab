"""From slices to cores: output-side limits, packing, spike traffic, and placement on the
mesh.

Traffic counts messages, not synapses (Loihi's axon semantics): a source neuron that
spikes sends one message to every destination core it has synapses on. With rates r(n)
(spikes per step, measured by the simulator on calibration data, or 1 per step when
none are given), the traffic from core a to core b is
    w(a, b) = sum of r(n) over the neurons n of a with a synapse into b,
and the placement minimizes the hop-weighted traffic H = sum over (a, b) of w(a, b) *
hops(phys(a), phys(b)) (targets.hops: router hops plus a cost per chip boundary). The
host's input enters at the router of physical core 0.

Decision: packing is next-fit over the slices in graph order, looking back at the last
PACK_WINDOW cores: a slice joins an earlier core when the union still keeps every limit
of a core class that takes both (neurons add, shared input axons count once, synapse
memory is recomputed on the union). It fills the edge tiles of a layer and puts small
layers (a readout) beside their neighbours; consecutive layers on one core also send
fewer messages over the mesh.
Decision: a greedy start (cores in order along a snake path through each chip's routers,
so consecutive layers sit side by side; on chips with several core classes, a bipartite
matching of cores to the physical cores of the classes they fit, as sinabs does for
Speck; or the in-order layout when that is cheaper) refined by simulated annealing over
swaps of two cores' positions (or a core and a free physical core of a class it fits; a
move that changes nothing is not taken, so equal-cost layouts keep the greedy order),
with a seeded generator: the same network, target, rates and seed give the same
placement, and never one above its start.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from snnc.backends.place import partition as P
from snnc.backends.place import rules
from snnc.backends.place.netmodel import NetModel
from snnc.backends.place.targets import CoreClass, Target, class_of, hops, router_of, total_cores
from snnc.ir.errors import SnncError

HOST = -1
PACK_WINDOW = 4
#: the annealer's work bound: neighbour terms evaluated (about 0.3 us each)
ANNEAL_TERMS = 12_000_000


@dataclass
class Edge:
    src: int  # core (index into plan.cores), HOST for the host's input
    dst: int
    axons: int  # source neurons with synapses into dst
    rate: float  # messages per step (w)
    synops: float  # synaptic events per step in dst


def slice_index(plan: P.Plan, model: NetModel, src: str, idx: np.ndarray) -> np.ndarray:
    """The slice (of plan.tiles order: channels, then rows, then columns) holding each
    flat neuron index of population src."""
    g = P.grid(model.populations[src])
    t = plan.tile[src]
    c, y, x = np.unravel_index(idx, g)
    nt = [-(-a // b) for a, b in zip(g, t)]
    return ((c // t[0]) * nt[1] + y // t[1]) * nt[2] + x // t[2]


def analyse(model: NetModel, target: Target, plan: P.Plan,
            rates: dict[str, np.ndarray]) -> list[Edge]:
    """The edges between cores (and from the host), and the output side of every core's
    usage (fan_out_slots, dest_cores, copies in Usage.extra)."""
    max_dest = target.neuron.get("max_destinations")
    core_of = {name: np.zeros(len(b), np.int64) for name, b in plan.slices.items()}
    for g, group in enumerate(plan.cores):
        for name, i in group:
            core_of[name][i] = g
    flat_rate = {k: np.asarray(v, np.float64).reshape(-1) for k, v in rates.items()}
    reached = {name: np.zeros(pop.neurons, np.int64)
               for name, pop in model.populations.items()}
    dests: list[set[int]] = [set() for _ in plan.cores]
    acc: dict[tuple[int, int], list[float]] = {}

    def add(a: int, b: int, axons: int, rate: float, syn: float) -> None:
        e = acc.setdefault((a, b), [0, 0.0, 0.0])
        e[0] += axons
        e[1] += rate
        e[2] += syn

    for g, u in enumerate(plan.core_usage):
        for src, (idx, cnt) in u.flat.items():
            r = flat_rate.get(src)
            rr = np.ones(len(idx)) if r is None else r[idx]
            if src == "input":
                add(HOST, g, len(idx), float(rr.sum()), float((rr * cnt).sum()))
                continue
            reached[src][idx] += 1
            sc = core_of[src][slice_index(plan, model, src, idx)]
            lo = int(sc.min())
            ax = np.bincount(sc - lo)
            rs = np.bincount(sc - lo, weights=rr)
            sy = np.bincount(sc - lo, weights=rr * cnt)
            for k in np.flatnonzero(ax).tolist():
                add(lo + k, g, int(ax[k]), float(rs[k]), float(sy[k]))
                dests[lo + k].add(g)
    for g, group in enumerate(plan.cores):
        slots = copies = 0
        for name, i in group:
            b = plan.slices[name][i]
            part = reached[name].reshape(P.grid(model.populations[name]))[
                b[0]:b[1], b[2]:b[3], b[4]:b[5]]
            slots += int(part.sum())
            if max_dest:
                copies += int(np.maximum(part - max_dest, 0).sum())
        u = plan.core_usage[g]
        u.extra["fan_out_slots"] = slots
        u.extra["dest_cores"] = len(dests[g])
        u.extra["copies"] = copies
    return [Edge(a, b, int(v[0]), v[1], v[2]) for (a, b), v in sorted(acc.items())]


def kinds_of(model: NetModel, group: list[P.SliceId]) -> set[str]:
    return {model.populations[name].kind for name, _ in group}


def _best_class(target: Target, u: P.Usage, kinds: set[str]) -> CoreClass:
    """The class a core comes closest to fitting (smallest worst used / max)."""
    def worst(c: CoreClass) -> float:
        return max((used / cap for used, cap in P.limits(target, c, u).values() if cap),
                   default=0.0)
    return min(P.classes_for(target, kinds), key=worst)


def plan_and_analyse(model: NetModel, target: Target, rates: dict[str, np.ndarray],
                     max_rounds: int = 24) -> tuple[P.Plan, list[Edge]]:
    """Check the layer rules, then plan (_plan) with balanced tiles and, on a target that
    packs, once more with full tiles (partition's fill); the plan with fewer cores wins,
    ties to balanced tiles.
    Decision: both are tried because neither wins everywhere: full tiles leave one small
    tile per axis that packs beside a neighbouring layer (neuron-bound cores), balanced
    tiles reach fewer destination cores and keep per-core memory even."""
    rules.check(model, target)
    best = _plan(model, target, rates, max_rounds, fill=False)
    if (target.pack and target.split_layers
            and 1 < len(best[0].cores) <= 1.25 * total_cores(target)):  # else hopeless
        full = _plan(model, target, rates, max_rounds, fill=True)
        if len(full[0].cores) < len(best[0].cores):
            best = full
    return best


def _plan(model: NetModel, target: Target, rates: dict[str, np.ndarray], max_rounds: int,
          fill: bool) -> tuple[P.Plan, list[Edge]]:
    """Partition, split further every population whose slices break an output-side limit
    (fan-out slots, destination cores, neuron copies) until none does, then pack."""
    more: dict[str, int] = {}
    for _ in range(max_rounds):
        plan = P.partition(model, target, more, fill)
        edges = analyse(model, target, plan, rates)
        bad: dict[str, tuple[str, int, int | None, CoreClass]] = {}
        for g, group in enumerate(plan.cores):
            kinds = kinds_of(model, group)
            u = plan.core_usage[g]
            if not P.fits(target, u, kinds):
                cls = _best_class(target, u, kinds)
                lim = P.limits(target, cls, u)
                r = P.violations(lim)[0]
                bad.setdefault(group[0][0], (r, lim[r][0], lim[r][1], cls))
        if not bad:
            break
        if not target.split_layers:
            name, (r, used, cap, cls) = next(iter(bad.items()))
            raise P.fit_error(target, cls, model.populations[name], r, used, cap,
                              one_neuron=False)
        for name in bad:
            more[name] = len(plan.slices[name]) + max(1, len(plan.slices[name]) // 4)
    else:
        name, (r, used, cap, cls) = next(iter(bad.items()))
        raise SnncError(f"{P.KIND_NAMES.get(model.populations[name].kind, 'layer')} "
                        f"{list(model.populations[name].shape)}: no split keeps {r} within "
                        f"{cap} on core class '{cls.name}' of {target.name} after "
                        f"{max_rounds} rounds", node=model.populations[name].origin,
                        hint="its outputs reach too many cores; choose a larger target")
    if target.pack and len(plan.cores) > 1 and pack(model, target, plan):
        edges = analyse(model, target, plan, rates)
        for g, group in enumerate(plan.cores):
            if not P.fits(target, plan.core_usage[g], kinds_of(model, group)):
                raise SnncError(f"internal: packed core {g} breaks a limit")
    return plan, edges


def pack(model: NetModel, target: Target, plan: P.Plan) -> bool:
    """Next-fit packing of slices into cores (see the module docstring); False when no
    two slices could share a core (the plan is unchanged)."""
    cap_n = max(c.limits["neurons"] for c in target.core_classes)
    cores: list[list[P.SliceId]] = []
    usages: list[P.Usage] = []
    kinds: list[set[str]] = []
    window: list[int] = []
    for group, u in zip(plan.cores, plan.core_usage):
        k_new = kinds_of(model, group)
        placed = False
        for k in reversed(window):
            if usages[k].neurons + u.neurons > cap_n:
                continue
            both = kinds[k] | k_new
            pops = [model.populations[n] for n, _ in cores[k] + group]
            m = P.merge(model, target, [usages[k], u], pops)
            if P.fits(target, m, both):
                cores[k] = cores[k] + group
                usages[k] = m
                kinds[k] = both
                placed = True
                break
        if not placed:
            cores.append(list(group))
            usages.append(u)
            kinds.append(k_new)
            window = (window + [len(cores) - 1])[-PACK_WINDOW:]
    if len(cores) == len(plan.cores):
        return False
    plan.cores, plan.core_usage = cores, usages
    return True


# ------------------------------------------------------------------ placement --------------
def core_order(target: Target, snake: bool) -> list[int]:
    """Global core ids, chip by chip; within a chip routers row by row (alternating
    direction when snake), the cores of a router together."""
    per_chip = target.cores_per_chip
    cw, ch = target.chip_routers
    cpr = target.cores_per_router
    order = []
    for chip in range(target.chips):
        for y in range(ch):
            xs = range(cw) if not snake or y % 2 == 0 else range(cw - 1, -1, -1)
            for x in xs:
                for k in range(cpr):
                    c = (y * cw + x) * cpr + k
                    if c < per_chip:
                        order.append(chip * per_chip + c)
    return order


def _assign(target: Target, allowed: list[set[str]], order: list[int],
            phys_class: list[str]) -> list[int] | None:
    """Each core to the first free physical core (in `order`) of a class it may use;
    None when that greedy fill runs out."""
    free = {name: [c for c in order if phys_class[c] == name]
            for name in {c.name for c in target.core_classes}}
    rank = {c: k for k, c in enumerate(order)}
    ptr = {name: 0 for name in free}
    out = []
    for ok in allowed:
        best = None
        for name in sorted(ok):  # the earliest free physical core of the allowed classes
            lst, i = free[name], ptr[name]
            if i < len(lst) and (best is None or rank[lst[i]] < rank[best[1]]):
                best = (name, lst[i])
        if best is None:
            return None
        ptr[best[0]] += 1
        out.append(best[1])
    return out


def _match(target: Target, allowed: list[set[str]], order: list[int],
           phys_class: list[str]) -> list[int] | None:
    """A bipartite matching of cores to physical cores of classes they fit (Hopcroft-
    Karp, networkx), or None when none covers every core."""
    g = nx.Graph()
    left = [("core", k) for k in range(len(allowed))]
    g.add_nodes_from(left, bipartite=0)
    for k, ok in enumerate(allowed):
        for c in order:
            if phys_class[c] in ok:
                g.add_edge(("core", k), ("phys", c))
    m = nx.bipartite.hopcroft_karp_matching(g, top_nodes=left)
    if any(("core", k) not in m for k in range(len(allowed))):
        return None
    return [m[("core", k)][1] for k in range(len(allowed))]


def place(model: NetModel, target: Target, plan: P.Plan, edges: list[Edge], seed: int = 0,
          iterations: int | None = None) -> tuple[list[int], list[int]]:
    """(placement, naive in-order placement): physical core of every core of the plan."""
    n = len(plan.cores)
    avail = total_cores(target)
    if n > avail:
        raise SnncError(f"the network needs {n} cores, {target.name} has {avail} "
                        f"({target.chips} chips of {target.cores_per_chip})",
                        hint="raise mesh.chips in a copy of the target description "
                             "(--target FILE.json)")
    phys_class = [class_of(target, c).name for c in range(avail)]
    allowed = [{c.name for c in P.fits(target, u, kinds_of(model, group))}
               for group, u in zip(plan.cores, plan.core_usage)]
    naive = _assign(target, allowed, core_order(target, snake=False), phys_class)
    snake_order = core_order(target, snake=True)
    start = _assign(target, allowed, snake_order, phys_class)
    if start is not None and naive is not None and (
            hop_traffic(target, naive, edges) < hop_traffic(target, start, edges)):
        start = naive  # the annealer starts from the better of the two
    if start is None or naive is None:
        start = _match(target, allowed, snake_order, phys_class)
        if start is None:
            need: dict[str, int] = {}
            for ok in allowed:
                key = " or ".join(sorted(ok))
                need[key] = need.get(key, 0) + 1
            raise SnncError(f"the network's {n} cores do not fit the core classes of "
                            f"{target.name}: it needs "
                            + ", ".join(f"{v} of {k}" for k, v in sorted(need.items())),
                            hint="classes per chip: " + ", ".join(
                                f"{c.count} {c.name}" for c in target.core_classes))
        naive = naive or start
    chips = max(c // target.cores_per_chip for c in start) + 1
    pool = [c for c in snake_order if c // target.cores_per_chip < chips]
    core = _anneal(target, start, pool, phys_class, allowed, edges, seed, iterations)
    if hop_traffic(target, core, edges) > hop_traffic(target, start, edges):
        core = list(start)  # annealing ends where it cooled, not always below its start
    return core, naive


def hop_traffic(target: Target, core: list[int], edges: list[Edge]) -> float:
    total = 0.0
    for e in edges:
        a = 0 if e.src == HOST else core[e.src]
        total += e.rate * hops(target, a, core[e.dst])
    return total


def _anneal(target: Target, start: list[int], pool: list[int], phys_class: list[str],
            allowed: list[set[str]], edges: list[Edge], seed: int, iterations: int | None
            ) -> list[int]:
    n = len(start)
    if len(pool) < 2 or not edges:
        return list(start)
    host = n  # a fixed node at physical core 0
    nbr: list[list[tuple[int, float]]] = [[] for _ in range(n + 1)]
    for e in edges:
        a = host if e.src == HOST else e.src
        if a != e.dst and e.rate > 0:
            nbr[a].append((e.dst, e.rate))
            nbr[e.dst].append((a, e.rate))
    # router coordinates and chip coordinates of every physical core (plain lists: fast)
    avail = total_cores(target)
    rx, ry, kx, ky = [0] * avail, [0] * avail, [0] * avail, [0] * avail
    cw, ch = target.chip_routers
    for c in set(pool) | {0}:
        _, x, y = router_of(target, c)
        rx[c], ry[c], kx[c], ky[c] = x, y, x // cw, y // ch
    hr, hc = target.hop["router"], target.hop["chip"]
    pos = list(start) + [0]
    where = {c: k for k, c in enumerate(start)}

    def cost_of(k: int, at: int, skip: int) -> float:
        x, y, cx, cy = rx[at], ry[at], kx[at], ky[at]
        tot = 0.0
        for m, w in nbr[k]:
            if m == skip:
                continue
            p = pos[m]
            tot += w * ((abs(x - rx[p]) + abs(y - ry[p])) * hr
                        + (abs(cx - kx[p]) + abs(cy - ky[p])) * hc)
        return tot

    rng = np.random.default_rng(seed)
    movable = [k for k in range(n) if nbr[k]]
    if not movable:
        return list(start)
    if iterations is None:  # 60 moves per core, within a budget of neighbour terms
        degree = sum(len(nbr[k]) for k in movable) / len(movable)
        iterations = int(min(60 * n + 2000, ANNEAL_TERMS / (4 * degree)))
    single = len(target.core_classes) == 1
    temp = max((w for lst in nbr for _, w in lst), default=1.0)
    picks = rng.integers(len(movable), size=iterations)
    targets = rng.integers(len(pool), size=iterations)
    coins = rng.random(iterations)
    for it in range(iterations):
        k = movable[int(picks[it])]
        c_new = pool[int(targets[it])]
        c_old = pos[k]
        if c_new == c_old:
            continue
        other = where.get(c_new, -1)
        if not single and (phys_class[c_new] not in allowed[k] or (
                other >= 0 and phys_class[c_old] not in allowed[other])):
            continue
        delta = cost_of(k, c_new, other) - cost_of(k, c_old, other)
        if other >= 0:
            delta += cost_of(other, c_old, k) - cost_of(other, c_new, k)
        t = temp * (1 - it / iterations) + 1e-9
        if delta < 0 or (delta > 0 and coins[it] < math.exp(-delta / t)):
            pos[k] = c_new
            where[c_new] = k
            if other >= 0:
                pos[other] = c_old
                where[c_old] = other
            else:
                del where[c_old]
    return pos[:n]


def routes(target: Target, plan: P.Plan, core: list[int], edges: list[Edge]) -> list[dict]:
    """One route per (source core, destination core): physical cores, axons, rate, hops."""
    out = []
    for e in edges:
        a = 0 if e.src == HOST else core[e.src]
        b = core[e.dst]
        out.append({"from": "host" if e.src == HOST else _label(plan, e.src),
                    "to": _label(plan, e.dst), "from_core": a, "to_core": b,
                    "from_router": list(router_of(target, a)),
                    "to_router": list(router_of(target, b)), "axons": e.axons,
                    "rate": round(e.rate, 6), "hops": hops(target, a, b)})
    return out


def _label(plan: P.Plan, g: int) -> str:
    return "+".join(f"{name}#{i}" for name, i in plan.cores[g])
