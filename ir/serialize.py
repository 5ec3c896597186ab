"""The versioned on-disk form of a graph: `graph.json` (structure) + `params.npz` (weights).

The JSON form is also what the NumPy runtime (backends/sim/runtime.py) executes, so the
artifact in OUT/ runs with numpy alone. Writing is deterministic: no timestamps, fixed key
order, zip entries with a fixed date, so the same graph gives byte-identical files.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.ops import OPS

FORMAT = "snnc-ir"
VERSION = 1
GRAPH_FILE = "graph.json"
PARAMS_FILE = "params.npz"


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    ops = []
    for op in graph.ops:
        rec: dict[str, Any] = {"kind": op.kind, "name": op.name, "out": op.out,
                               "origin": op.origin, "inputs": op.inputs(),
                               "params": {}, "attrs": {}}
        for f in fields(op):
            role = f.metadata.get("role")
            v = getattr(op, f.name)
            if role == "param":
                rec["params"][f.name] = v
            elif role == "attr":
                rec["attrs"][f.name] = list(v) if isinstance(v, tuple) else v
        ops.append(rec)
    return {
        "format": FORMAT,
        "version": VERSION,
        "inputs": [{"name": v, "shape": list(graph.values[v].shape),
                    "dtype": graph.values[v].dtype} for v in graph.inputs],
        "outputs": list(graph.outputs),
        "ops": ops,
        "shapes": {op.out: list(graph.values[op.out].shape) for op in graph.ops},
        "facts": sorted(graph.facts),
        "meta": graph.meta,
    }


def _tuple(v: Any) -> Any:
    return tuple(_tuple(x) for x in v) if isinstance(v, list) else v


def graph_from_dict(d: dict[str, Any], params: dict[str, np.ndarray]) -> Graph:
    if d.get("format") != FORMAT:
        raise SnncError(f"not an snnc IR file (format {d.get('format')!r})")
    if d.get("version") != VERSION:
        raise SnncError(f"snnc IR version {d.get('version')} is not supported "
                        f"(this snnc reads version {VERSION})", hint="recompile the model")
    _expect(isinstance(d.get("facts"), list) and all(isinstance(f, str) for f in d["facts"])
            and isinstance(d.get("meta"), dict) and isinstance(d.get("inputs"), list)
            and isinstance(d.get("outputs"), list) and isinstance(d.get("ops"), list)
            and all(isinstance(o, str) for o in d["outputs"]),
            "facts, meta, inputs, outputs and ops must be lists of names, a dict and lists")
    meta = d["meta"]
    for key, ok in (("timesteps", _is_int), ("input_steps", _is_int),
                    ("coding", lambda v: isinstance(v, str)),
                    ("target_timesteps",
                     lambda v: isinstance(v, list) and all(_is_int(t) for t in v))):
        _expect(key not in meta or ok(meta[key]), f"meta '{key}' has the wrong type")
    g = Graph(facts=set(d["facts"]), meta=dict(meta), params=dict(params))
    for rec in d["inputs"]:
        _expect(isinstance(rec, dict) and isinstance(rec.get("name"), str)
                and isinstance(rec.get("dtype"), str) and isinstance(rec.get("shape"), list)
                and all(_is_int(v, 1 << 31) and v >= 0 for v in rec["shape"]),
                "an input must be {name, shape: [non-negative ints], dtype}")
        g.inputs.append(rec["name"])
        g.values[rec["name"]] = Value(rec["name"], tuple(rec["shape"]), rec["dtype"])
    g.outputs = list(d["outputs"])
    ops = []
    for rec in d["ops"]:
        _expect(isinstance(rec, dict) and isinstance(rec.get("kind"), str)
                and isinstance(rec.get("name"), str) and isinstance(rec.get("out"), str)
                and isinstance(rec.get("origin"), (str, type(None)))
                and isinstance(rec.get("inputs"), list)
                and all(isinstance(v, str) for v in rec["inputs"])
                and isinstance(rec.get("params"), dict)
                and all(isinstance(v, (str, type(None))) for v in rec["params"].values())
                and isinstance(rec.get("attrs"), dict),
                "an op must be {kind, name, out, origin, inputs: [names], params: {role: "
                "name or null}, attrs: {...}}")
        cls = OPS.get(rec["kind"])
        if cls is None:
            raise SnncError(f"unknown op kind '{rec['kind']}' in IR file")
        kw: dict[str, Any] = {"name": rec["name"], "out": rec["out"], "origin": rec["origin"]}
        ins = list(rec["inputs"])
        for f in fields(cls):
            role = f.metadata.get("role")
            if role == "operand":
                _expect(bool(ins), f"op '{rec['name']}' ({rec['kind']}) lacks operand "
                        f"'{f.name}'")
                kw[f.name] = ins.pop(0)
            elif role == "operands":
                kw[f.name], ins = tuple(ins), []
            elif role == "param":
                kw[f.name] = rec["params"].get(f.name)
            elif role == "attr" and f.name in rec["attrs"]:
                val = rec["attrs"][f.name]
                _expect(_attr_ok(val, str(f.type)), f"op '{rec['name']}' ({rec['kind']}): "
                        f"attribute '{f.name}' must be {f.type}, not {val!r:.60}")
                kw[f.name] = _tuple(val)
        ops.append(cls(**kw))
    return g.rebuild(ops)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise SnncError(f"the IR file is malformed: {what}",
                        hint="recompile the model (an edited graph.json is not read)")


def _is_int(v: Any, bound: int = 1 << 63) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -bound < v < bound


def _attr_ok(v: Any, ann: str) -> bool:
    """Whether a JSON value fits an attribute's annotation (bool, int, float, str,
    tuple[int, ...], float | None); integers in tuples (windows, strides, pads) below
    2^31, others below 2^63, floats finite."""
    if v is None:
        return "None" in ann
    if ann.startswith("tuple"):
        return isinstance(v, list) and all(_is_int(x, 1 << 31) for x in v)
    if ann == "bool":
        return isinstance(v, bool)
    if ann == "int":
        return _is_int(v)
    if ann.startswith("float"):
        return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
    if ann == "str":
        return isinstance(v, str)
    return False


def dumps_json(obj: Any) -> bytes:
    """Canonical JSON bytes used for every JSON file snnc writes."""
    return (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (readable by np.load) with entries in sorted order and a fixed date."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.ascontiguousarray(arrays[name]),
                                      allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


_SAFE_KEY = re.compile(r"[ -~]{1,200}\Z")


def param_key(name: str) -> str:
    """The params.npz entry of a param: its name when it is short printable ASCII, else
    '~' and a hash of the name (a zip member name cannot hold NUL, and very long or odd
    names break zip readers); graph.json's "param_keys" maps such names to their key."""
    if _SAFE_KEY.match(name) and not name.startswith("~"):
        return name
    return "~" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()


def graph_files(graph: Graph) -> dict[str, bytes]:
    """The on-disk form as {file name: bytes}."""
    used = sorted({p for op in graph.ops for p in op.param_names()})
    keys = {p: param_key(p) for p in used}
    d = graph_to_dict(graph)
    renamed = {p: k for p, k in keys.items() if p != k}
    if renamed:
        d["param_keys"] = renamed
    return {GRAPH_FILE: dumps_json(d),
            PARAMS_FILE: npz_bytes({keys[p]: graph.params[p] for p in used})}


def _graph_files(d: Path) -> tuple[Path, Path]:
    gfile, pfile = d / GRAPH_FILE, d / PARAMS_FILE
    if not gfile.is_file() or not pfile.is_file():
        raise SnncError(f"'{d}' is not an snnc output directory (no {GRAPH_FILE} / "
                        f"{PARAMS_FILE})", hint="compile a model first: snnc MODEL.onnx -o DIR")
    return gfile, pfile


def load_meta(directory: str | Path) -> dict[str, Any]:
    """The graph's meta (timesteps, coding, ...) of an output directory, without reading
    its weights."""
    d = Path(directory)
    gfile, _ = _graph_files(d)
    try:
        g = json.loads(gfile.read_text())
        meta = g.get("meta", {}) if isinstance(g, dict) else None
        if not isinstance(meta, dict):
            raise ValueError("graph.json is not an snnc graph")
        return dict(meta)
    except (ValueError, OSError, RecursionError) as e:
        raise SnncError(f"cannot read the IR in '{d}': {type(e).__name__}: {e}",
                        hint="recompile the model") from None


def load_graph(directory: str | Path) -> Graph:
    d = Path(directory)
    gfile, pfile = _graph_files(d)
    try:
        meta = json.loads(gfile.read_text())
        with np.load(pfile, allow_pickle=False) as z:
            params = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, RecursionError) as e:
        raise SnncError(f"cannot read the IR in '{d}': {type(e).__name__}: {e}") from None
    try:
        if isinstance(meta, dict) and isinstance(meta.get("param_keys"), dict):
            names = {k: n for n, k in meta["param_keys"].items()}
            params = {names.get(k, k): v for k, v in params.items()}
        graph = graph_from_dict(meta, params)
        from snnc.ir.verify import verify

        verify(graph)
        for name, a in graph.params.items():
            if a.dtype.kind not in "fiub" or (a.dtype.kind == "f" and not np.isfinite(a).all()):
                raise SnncError(f"param '{name}' holds {a.dtype} values that are not finite "
                                "numbers")
    except SnncError as e:
        raise SnncError(f"'{d}' holds an invalid network (edited or corrupted?): "
                        f"{e.message}", node=e.node, hint="recompile the model") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RecursionError, ZeroDivisionError, OverflowError) as e:
        raise SnncError(f"'{d}' holds an invalid network (edited or corrupted?): "
                        f"{type(e).__name__}: {e}", hint="recompile the model") from None
    return graph
