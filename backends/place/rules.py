"""Layer rules of chips whose cores compute whole layers of a fixed form: Speck /
DYNAP-CNN (one convolution + IF neurons + sum pooling per core, square kernels up to
16 x 16, strides 1/2/4/8, pooling 1/2/4; sinabs backend/dynapcnn) and Xylo (dense layers
only; rockpool xylo_mapper). A target's "layer_rules" (all optional):

    {"kernel_max": 16, "kernel_square": true, "strides": [1, 2, 4, 8], "pads_max": 7,
     "pool": [1, 2, 4], "max_pool": false, "max_channels": 1024, "max_input": [128, 128],
     "one_projection": true, "dense_only": false, "src": "S1 (code)"}

Each population is checked before partitioning; a refusal names the layer, the rule
and the change that would fit.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnc.ir.errors import SnncError

if TYPE_CHECKING:  # targets.py validates rules with this module
    from snnc.backends.place.netmodel import NetModel, Population
    from snnc.backends.place.targets import Target

#: rule -> the JSON type it takes
RULES: dict[str, type] = {"kernel_max": int, "kernel_square": bool, "strides": list,
                          "pads_max": int, "pool": list, "max_pool": bool,
                          "max_channels": int, "max_input": list, "one_projection": bool,
                          "dense_only": bool, "src": str}


def validate(rules: dict[str, Any]) -> str | None:
    """None, or what is wrong with a description's layer_rules (for targets.py)."""
    for k, v in rules.items():
        want = RULES.get(k)
        if want is None:
            return f"unknown rule {k!r} (known: {', '.join(sorted(RULES))})"
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            return f"{k}: expected {want.__name__}, got {v!r}"
        if want is list and not all(isinstance(x, int) and not isinstance(x, bool)
                                    for x in v):
            return f"{k}: expected a list of integers, got {v!r}"
    return None


def check(model: NetModel, target: Target) -> None:
    rules = target.layer_rules or {}
    if not rules:
        return
    for pop in model.populations.values():
        _check(pop, target, rules)


def _fail(pop: Population, target: Target, what: str, hint: str) -> SnncError:
    return SnncError(f"layer {list(pop.shape)} breaks a layer rule of {target.name}: {what}",
                     node=pop.origin, hint=hint)


def _check(pop: Population, target: Target, rules: dict[str, Any]) -> None:
    if pop.kind == "gate" and rules.get("max_pool") is False:
        raise _fail(pop, target, "its cores pool by summing, a spiking max-pool cannot run "
                    "on them", "train the network with average pooling instead of max "
                    "pooling")
    if pop.kind == "softmax":
        raise _fail(pop, target, "a spiking softmax has no core", "end the network with "
                    "its logits (no Softmax) or use --readout membrane")
    g = pop.attrs.get("geometry")
    if rules.get("dense_only") and g is not None and not pop.attrs.get("dense"):
        raise _fail(pop, target, "it computes dense layers only, this layer is a "
                    "convolution", "flatten before this layer and use a dense layer")
    if rules.get("one_projection") and (len(pop.projections) > 1 or len(pop.synaptic) > 1):
        raise _fail(pop, target, f"a core computes one weight layer of one source, this "
                    f"layer sums {max(len(pop.projections), len(pop.synaptic))} inputs "
                    "(a residual join)", "join residual branches after the spiking layers, "
                    "or choose a target that splits layers")
    if g is None:
        return
    kh, kw = g["kernel"]
    if rules.get("kernel_square") and kh != kw:
        raise _fail(pop, target, f"kernels must be square, got {kh}x{kw}",
                    "use a square kernel")
    kmax = rules.get("kernel_max")
    if kmax is not None and max(kh, kw) > kmax:
        dense = " (a dense layer's kernel covers its whole input)" if pop.attrs.get(
            "dense") else ""
        raise _fail(pop, target, f"kernel {kh}x{kw} > {kmax}x{kmax}{dense}",
                    f"reduce the input of this layer to at most {kmax}x{kmax} (pool "
                    "before it)")
    strides = rules.get("strides")
    if strides and any(s not in strides for s in g["strides"]):
        raise _fail(pop, target, f"stride {list(g['strides'])} not in {strides}",
                    f"use a stride in {strides}")
    pmax = rules.get("pads_max")
    if pmax is not None and max(g["pads"]) > pmax:
        raise _fail(pop, target, f"padding {list(g['pads'])} > {pmax}",
                    f"pad at most {pmax}")
    cmax = rules.get("max_channels")
    if cmax is not None and g["f"] > cmax:
        raise _fail(pop, target, f"{g['f']} output channels > {cmax}",
                    f"use at most {cmax} output channels")
    imax = rules.get("max_input")
    if imax and len(g["in"]) == 3 and (g["in"][1] > imax[0] or g["in"][2] > imax[1]):
        raise _fail(pop, target, f"input {g['in'][1]}x{g['in'][2]} > {imax[0]}x{imax[1]}",
                    "downsample the input")
    pool = rules.get("pool")
    for p in pop.attrs.get("pools", []):
        k, s = p["kernel"], p["strides"]
        if pool and (k[0] != k[1] or k[0] not in pool or tuple(s) != tuple(k)):
            raise _fail(pop, target, f"pooling {k[0]}x{k[1]} stride {list(s)}: its cores "
                        f"pool square, non-overlapping windows of {pool}",
                        f"pool with a square window of {pool} and stride = window")
