"""Target descriptions of neuromorphic chips: a versioned JSON schema, the presets shipped
with snnc (presets/*.json) and the validation of a user's own file.

Schema "snnc-target/v1" (every number is {"value": ..., "src": SOURCE-ID, "status":
TAG}, so that a report can say where each limit comes from; TAG is one of code, doc, pub,
derived, unverified, user, as in ../shared/reference/neuromorphic_targets.md):

    {"schema": "snnc-target/v1", "name": str, "status": "verified|partial|unverified",
     "description": str, "sources": {ID: citation, ...},
     "mesh": {"routers": [width, height], "cores_per_router": N, "chips": N,
              "chip_routers": [w, h],                  # routers per chip (chips tile)
              "hop": {"router": cost, "chip": cost}},  # per hop, relative units
     "core_classes": [{"name": str, "count": N,        # cores of the class per chip
                       "neurons": N, "fan_in": N|null, "fan_out_slots": N|null,
                       "dest_cores": N|null, "synapse_memory": N|null,
                       "host_inputs": N|null,   # distinct inputs from the host
                       "kernel_memory": N|null, "neuron_memory": N|null,
                       "bias_memory": N|null,   # Speck: per-layer memories
                       "kinds": ["if", "gate", "softmax", "readout"]|absent}],
     "neuron": {"max_destinations": N|null, "max_fan_in": N|null, "max_fan_out": N|null},
     "weights": {"bits": N},
     "synapse_cost": {"model": "count|crossbar|loihi1_groups|bytes|paicore_lcn|speck_pow2",
                      ...model parameters},
     "split": {"layers": true|false, "pack": true|false, "fan_in": "error"},
     "layer_rules": {...}|null}

Limits that a chip does not have are null (not checked). A class's `count` times the
number of chips bounds the cores of that class; `kinds` restricts a class to some
populations (Xylo: hidden neurons, output neurons). `split.layers` false: a layer cannot
be split across cores (Speck, Xylo); `split.pack` false: a core holds one layer (Speck),
else small slices of several layers share a core when all of them fit. Validation errors
name the field (`core_classes[0].neurons.value: expected an integer >= 1, got -3`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnc.backends.place.rules import validate as validate_rules
from snnc.ir.errors import SnncError

SCHEMA = "snnc-target/v1"
PRESET_DIR = Path(__file__).resolve().parent / "presets"
STATUS = ("verified", "partial", "unverified")
TAGS = ("code", "doc", "pub", "derived", "unverified", "user")
COST_MODELS = ("count", "crossbar", "loihi1_groups", "bytes", "paicore_lcn", "speck_pow2")
#: the per-core resources a core class may limit, in report order
CORE_LIMITS = ("neurons", "fan_in", "fan_out_slots", "dest_cores", "synapse_memory",
               "host_inputs", "kernel_memory", "neuron_memory", "bias_memory")
#: the kinds of population a core class may be restricted to ("kinds")
KINDS = ("if", "gate", "softmax", "readout")


@dataclass(frozen=True)
class CoreClass:
    name: str
    count: int
    limits: dict[str, int | None]  # CORE_LIMITS -> max (None: not limited)
    sources: dict[str, str]  # resource -> "S1 (code)"
    kinds: tuple[str, ...] | None = None  # the populations it takes (None: any)


@dataclass(frozen=True)
class Target:
    name: str
    status: str
    description: str
    sources: dict[str, str]
    routers: tuple[int, int]  # router grid of one chip... of the whole machine: chip grid
    cores_per_router: int
    chips: int
    chip_routers: tuple[int, int]
    hop: dict[str, float]
    core_classes: tuple[CoreClass, ...]
    neuron: dict[str, int | None]
    weight_bits: int
    synapse_cost: dict[str, Any]
    split_layers: bool
    pack: bool
    fan_in_split: str
    layer_rules: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def cores_per_chip(self) -> int:
        return sum(c.count for c in self.core_classes)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_target(spec: str | Path) -> Target:
    """A preset by name, or a user's JSON file by path."""
    path = Path(spec)
    name = str(spec)
    if name in preset_names():
        path = PRESET_DIR / f"{name}.json"
    elif not path.is_file():
        raise SnncError(f"unknown target '{spec}'",
                        hint=f"use a preset ({', '.join(preset_names())}) or a JSON file "
                             f"with schema {SCHEMA}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SnncError(f"cannot read target description '{path}': {e}") from None
    return parse_target(raw, where=str(path))


class _Reader:
    """Typed access to a raw description that names the field of every error."""

    def __init__(self, raw: dict[str, Any], where: str):
        self.raw, self.where = raw, where
        self.sources: dict[str, str] = {}

    def fail(self, path: str, what: str) -> SnncError:
        return SnncError(f"invalid target description {self.where}: {path}: {what}",
                         hint=f"see the schema in snnc/backends/place/targets.py ({SCHEMA})")

    def get(self, obj: Any, path: str, key: str, default: Any = ...) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(path, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            if default is ...:
                raise self.fail(f"{path}.{key}".lstrip("."), "missing")
            return default
        return obj[key]

    def number(self, obj: Any, path: str, key: str, *, optional: bool = False,
               minimum: int = 1) -> tuple[int | None, str]:
        """A {"value", "src", "status"} number: (value or None, 'S1 (code)')."""
        p = f"{path}.{key}".lstrip(".")
        v = self.get(obj, path, key, None if optional else ...)
        if v is None:
            return None, ""
        if not isinstance(v, dict):
            raise self.fail(p, "expected {\"value\": ..., \"src\": ..., \"status\": ...}")
        value = v.get("value", ...)
        if value is ...:
            raise self.fail(f"{p}.value", "missing")
        if value is None and optional:
            return None, ""
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{p}.value", f"expected an integer >= {minimum}, got {value!r}")
        src, status = v.get("src"), v.get("status")
        if src not in self.sources:
            raise self.fail(f"{p}.src", f"unknown source {src!r} (declare it in 'sources')")
        if status not in TAGS:
            raise self.fail(f"{p}.status", f"expected one of {', '.join(TAGS)}, got "
                                           f"{status!r}")
        return value, f"{src} ({status})"


def parse_target(raw: Any, where: str = "<target>") -> Target:
    """Validate a raw description (see the module docstring) into a Target."""
    r = _Reader(raw, where)
    if not isinstance(raw, dict):
        raise r.fail("(top)", "expected a JSON object")
    if r.get(raw, "", "schema") != SCHEMA:
        raise r.fail("schema", f"expected {SCHEMA!r}, got {raw.get('schema')!r}")
    name = r.get(raw, "", "name")
    if not isinstance(name, str) or not name:
        raise r.fail("name", "expected a non-empty string")
    status = r.get(raw, "", "status")
    if status not in STATUS:
        raise r.fail("status", f"expected one of {', '.join(STATUS)}, got {status!r}")
    sources = r.get(raw, "", "sources")
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise r.fail("sources", "expected an object of source id -> citation")
    r.sources = sources
    mesh = r.get(raw, "", "mesh")
    routers = _pair(r, mesh, "mesh", "routers")
    chip_routers = _pair(r, mesh, "mesh", "chip_routers")
    cpr, _ = r.number(mesh, "mesh", "cores_per_router")
    chips, _ = r.number(mesh, "mesh", "chips")
    if routers[0] % chip_routers[0] or routers[1] % chip_routers[1]:
        raise r.fail("mesh.chip_routers", f"{list(chip_routers)} does not tile the router "
                                          f"grid {list(routers)}")
    grid_chips = (routers[0] // chip_routers[0]) * (routers[1] // chip_routers[1])
    if grid_chips != chips:
        raise r.fail("mesh.chips", f"{chips} chips, but the router grid holds {grid_chips}")
    hop = r.get(mesh, "mesh", "hop")
    for k in ("router", "chip"):
        v = r.get(hop, "mesh.hop", k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise r.fail(f"mesh.hop.{k}", f"expected a number >= 0, got {v!r}")
    classes = r.get(raw, "", "core_classes")
    if not isinstance(classes, list) or not classes:
        raise r.fail("core_classes", "expected a non-empty list")
    parsed = []
    for i, c in enumerate(classes):
        path = f"core_classes[{i}]"
        cname = r.get(c, path, "name")
        count, _ = r.number(c, path, "count")
        limits, srcs = {}, {}
        for key in CORE_LIMITS:
            limits[key], srcs[key] = r.number(c, path, key, optional=key != "neurons")
        kinds = r.get(c, path, "kinds", None)
        if kinds is not None and (not isinstance(kinds, list) or not kinds
                                  or any(k not in KINDS for k in kinds)):
            raise r.fail(f"{path}.kinds", f"expected a list of {', '.join(KINDS)}, got "
                                          f"{kinds!r}")
        parsed.append(CoreClass(str(cname), count, limits, srcs,
                                None if kinds is None else tuple(kinds)))
    per_chip = sum(c.count for c in parsed)
    if per_chip > chip_routers[0] * chip_routers[1] * cpr:
        raise r.fail("core_classes", f"{per_chip} cores per chip, but a chip has "
                                     f"{chip_routers[0] * chip_routers[1] * cpr} core slots")
    neuron = r.get(raw, "", "neuron")
    nlim = {k: r.number(neuron, "neuron", k, optional=True)[0]
            for k in ("max_destinations", "max_fan_in", "max_fan_out")}
    bits, _ = r.number(r.get(raw, "", "weights"), "weights", "bits", minimum=1)
    if bits > 16:
        raise r.fail("weights.bits.value", f"at most 16 bits, got {bits}")
    cost = r.get(raw, "", "synapse_cost")
    model = r.get(cost, "synapse_cost", "model")
    if model not in COST_MODELS:
        raise r.fail("synapse_cost.model", f"expected one of {', '.join(COST_MODELS)}, got "
                                           f"{model!r}")
    split = r.get(raw, "", "split")
    layers = r.get(split, "split", "layers")
    if not isinstance(layers, bool):
        raise r.fail("split.layers", f"expected true or false, got {layers!r}")
    pack = r.get(split, "split", "pack", True)
    if not isinstance(pack, bool):
        raise r.fail("split.pack", f"expected true or false, got {pack!r}")
    fan_in = r.get(split, "split", "fan_in")
    if fan_in not in ("error",):
        raise r.fail("split.fan_in", f"expected 'error', got {fan_in!r}")
    rules = r.get(raw, "", "layer_rules", None)
    if rules is not None and not isinstance(rules, dict):
        raise r.fail("layer_rules", "expected an object or null")
    bad = None if rules is None else validate_rules(rules)
    if bad:
        raise r.fail("layer_rules", bad)
    return Target(name=name, status=status, description=str(raw.get("description", "")),
                  sources=dict(sources), routers=routers, cores_per_router=cpr, chips=chips,
                  chip_routers=chip_routers, hop={k: float(hop[k]) for k in ("router", "chip")},
                  core_classes=tuple(parsed), neuron=nlim, weight_bits=bits,
                  synapse_cost=dict(cost), split_layers=layers, pack=pack, fan_in_split=fan_in,
                  layer_rules=rules, raw=raw)


def _pair(r: _Reader, obj: Any, path: str, key: str) -> tuple[int, int]:
    v = r.get(obj, path, key)
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v)):
        raise r.fail(f"{path}.{key}", f"expected [width, height] of positive integers, got {v!r}")
    return int(v[0]), int(v[1])


def router_of(target: Target, core: int) -> tuple[int, int, int]:
    """(chip, x, y) of the router of global core index `core`: chips in row-major order
    over the chip grid, routers of a chip in row-major order, cores_per_router each."""
    per_chip = target.cores_per_chip
    chip, local = divmod(core, per_chip)
    r = local // target.cores_per_router
    cw, ch = target.chip_routers
    gx = target.routers[0] // cw
    return chip, (chip % gx) * cw + r % cw, (chip // gx) * ch + r // cw


def hops(target: Target, a: int, b: int) -> float:
    """Hop cost between the routers of cores a and b: Manhattan distance on the router
    grid, router hops at mesh.hop.router, plus mesh.hop.chip per chip boundary crossed."""
    ca, xa, ya = router_of(target, a)
    cb, xb, yb = router_of(target, b)
    cw, ch = target.chip_routers
    crossings = abs(xa // cw - xb // cw) + abs(ya // ch - yb // ch)
    return (abs(xa - xb) + abs(ya - yb)) * target.hop["router"] + crossings * target.hop["chip"]


def class_of(target: Target, core: int) -> CoreClass:
    """The core class of global core index `core` (classes in order within a chip)."""
    local = core % target.cores_per_chip
    for c in target.core_classes:
        if local < c.count:
            return c
        local -= c.count
    raise AssertionError("core index out of range")


def total_cores(target: Target) -> int:
    return target.cores_per_chip * target.chips


def ceil_log2(n: int) -> int:
    return 0 if n <= 1 else math.ceil(math.log2(n))
