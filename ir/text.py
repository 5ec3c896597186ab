"""The `.snnir` text form: printer and parser (round-trips exactly).

    snnir 1
    facts ["no-batchnorm"]
    meta {"timesteps": 64}
    param @conv1.w [16,1,5,5] float32
    input %x [1,28,28] float32
    %y = conv(%x) weight=@conv1.w bias=null strides=[1,1] ... : [16,24,24] name="c1" origin="c1"
    output %y

Names are printed bare when they are plain identifiers and as JSON strings otherwise, so
ONNX names containing anything at all survive. Weights are printed as their shapes only,
unless asked for inline (`print_graph(g, weights=True)`, what `snnc opt` writes):

    param @fc.w [2,3] float32 = [[0.5,-1.0,2.0],[0.0,0.25,1.0]]

(nested JSON lists; every float32 printed with the shortest decimal that reads back to the
same float32, NaN/Infinity as JSON extensions), so small IR files carry their weights and
round-trip exactly. parse_graph() takes inline values, or the arrays separately.
"""
from __future__ import annotations

import json
import re
from dataclasses import fields
from typing import Any

import numpy as np
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.ops import OPS

VERSION = 1
_BARE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]*\Z")


def _name(sigil: str, name: str) -> str:
    return sigil + (name if _BARE.match(name) else json.dumps(name))


def _lit(v: Any) -> str:
    if isinstance(v, tuple):
        v = list(v)
    return json.dumps(v, separators=(",", ":"))


_JSON_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _array_lit(a: np.ndarray) -> str:
    """An array as nested JSON lists: each element the shortest repr of its own dtype
    (np.float32's repr reads back to the same float32), so parsing restores it exactly."""
    flat = a.reshape(-1)
    if a.dtype.kind == "f":
        items = [_JSON_SPECIAL.get(str(v), str(v)) if not np.isfinite(v) else
                 (str(v) if a.dtype == np.float32 else repr(float(v))) for v in flat]
    elif a.dtype.kind == "b":
        items = ["true" if v else "false" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    if a.ndim == 0:
        return items[0]

    def nest(i: int, dims: tuple[int, ...]) -> tuple[str, int]:
        if len(dims) == 1:
            return "[" + ",".join(items[i:i + dims[0]]) + "]", i + dims[0]
        parts = []
        for _ in range(dims[0]):
            part, i = nest(i, dims[1:])
            parts.append(part)
        return "[" + ",".join(parts) + "]", i

    return nest(0, a.shape)[0]


def print_graph(graph: Graph, weights: bool = False) -> str:
    """The text form; weights: print every parameter's values inline (else shapes only)."""
    lines = [f"snnir {VERSION}", f"facts {_lit(sorted(graph.facts))}",
             f"meta {json.dumps(graph.meta, sort_keys=True, separators=(',', ':'))}"]
    for p in sorted({p for op in graph.ops for p in op.param_names()}):
        a = graph.params[p]
        lines.append(f"param {_name('@', p)} {_lit(list(a.shape))} {a.dtype}"
                     + (f" = {_array_lit(a)}" if weights else ""))
    for v in graph.inputs:
        val = graph.values[v]
        lines.append(f"input {_name('%', v)} {_lit(list(val.shape))} {val.dtype}")
    for op in graph.ops:
        args, kv = [], []
        for f in fields(op):
            role = f.metadata.get("role")
            value = getattr(op, f.name)
            if role == "operand":
                args.append(_name("%", value))
            elif role == "operands":
                args.extend(_name("%", x) for x in value)
            elif role == "param":
                kv.append(f"{f.name}={_name('@', value) if value else 'null'}")
            elif role == "attr":
                kv.append(f"{f.name}={_lit(value)}")
        shape = _lit(list(graph.values[op.out].shape))
        lines.append(f"{_name('%', op.out)} = {op.kind}({', '.join(args)})"
                     f"{' ' if kv else ''}{' '.join(kv)} : {shape} "
                     f"name={json.dumps(op.name)} origin={json.dumps(op.origin)}")
    for v in graph.outputs:
        lines.append(f"output {_name('%', v)}")
    return "\n".join(lines) + "\n"


def _shape(sc: _Scanner) -> tuple[int, ...]:
    v = sc.literal()
    if (not isinstance(v, list) or len(v) > 8
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40
                       for d in v)):
        raise sc.fail("a shape must be a list of at most 8 sizes")
    return tuple(v)


class _Scanner:
    _dec = json.JSONDecoder()

    def __init__(self, text: str, lineno: int):
        self.s, self.i, self.lineno = text, 0, lineno

    def fail(self, what: str) -> SnncError:
        return SnncError(f"snnir line {self.lineno}: {what} at column {self.i + 1}: "
                         f"{self.s.strip()[:80]!r}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def peek(self, tok: str) -> bool:
        self.ws()
        return self.s.startswith(tok, self.i)

    def expect(self, tok: str) -> None:
        if not self.peek(tok):
            raise self.fail(f"expected {tok!r}")
        self.i += len(tok)

    def word(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.s, self.i)
        if not m:
            raise self.fail("expected a word")
        self.i = m.end()
        return m.group()

    def literal(self) -> Any:
        self.ws()
        try:
            v, self.i = self._dec.raw_decode(self.s, self.i)
        except json.JSONDecodeError:
            raise self.fail("expected a literal") from None
        return v

    def name(self, sigil: str) -> str:
        self.expect(sigil)
        if self.s.startswith('"', self.i):
            return self.literal()
        m = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]*").match(self.s, self.i)
        if not m:
            raise self.fail(f"expected a name after {sigil}")
        self.i = m.end()
        return m.group()

    def end(self) -> None:
        self.ws()
        if self.i != len(self.s):
            raise self.fail("unexpected text")


def _attr_value(v: Any) -> Any:
    return tuple(_attr_value(x) for x in v) if isinstance(v, list) else v


def _inline_array(sc: _Scanner, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    value = sc.literal()
    try:
        a = np.array(value, dtype=np.dtype(dtype))
    except (TypeError, ValueError, OverflowError):
        raise sc.fail(f"values that are not {dtype}") from None
    if a.size == 0 and 0 in shape:
        a = a.reshape(shape)
    if a.shape != shape:
        raise sc.fail(f"values of shape {list(a.shape)} for a param declared "
                      f"{list(shape)}")
    return a


def parse_graph(text: str, params: dict[str, np.ndarray] | None = None, *,
                strict: bool = False) -> Graph:
    """Parse the text form (see _parse); a text whose literals have the wrong types
    (a shape that is not a list of sizes, a meta that is not an object, ...) is a
    SnncError, never another exception."""
    try:
        return _parse(text, params, strict)
    except SnncError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
            ZeroDivisionError) as e:
        raise SnncError(f"snnir: not a valid IR ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None


def _parse(text: str, params: dict[str, np.ndarray] | None, strict: bool) -> Graph:
    """Parse the text form. Weights come from inline values, else from `params` (shapes
    and dtypes must match the declarations), else (unless strict) are zero arrays of the
    declared shapes (enough for structure)."""
    g = Graph()
    declared: dict[str, tuple[tuple[int, ...], str]] = {}
    inline: dict[str, np.ndarray] = {}
    ops = []
    lines = text.splitlines()
    if not lines or lines[0].strip() != f"snnir {VERSION}":
        raise SnncError(f"not an snnir v{VERSION} text (first line must be 'snnir {VERSION}')")
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sc = _Scanner(line, lineno)
        if sc.peek("%"):
            out = sc.name("%")
            sc.expect("=")
            kind = sc.word()
            if kind not in OPS:
                raise sc.fail(f"unknown op kind '{kind}'")
            cls = OPS[kind]
            sc.expect("(")
            args: list[str] = []
            while not sc.peek(")"):
                args.append(sc.name("%"))
                if not sc.peek(")"):
                    sc.expect(",")
            sc.expect(")")
            kw: dict[str, Any] = {}
            while not sc.peek(":"):
                key = sc.word()
                sc.expect("=")
                kw[key] = sc.name("@") if sc.peek("@") else _attr_value(sc.literal())
            sc.expect(":")
            sc.literal()  # shape: re-inferred
            sc.expect("name=")
            kw["name"] = sc.literal()
            sc.expect("origin=")
            kw["origin"] = sc.literal()
            sc.end()
            for f in fields(cls):
                role = f.metadata.get("role")
                if role == "operand":
                    if not args:
                        raise sc.fail(f"{kind} needs more operands")
                    kw[f.name] = args.pop(0)
                elif role == "operands":
                    kw[f.name], args = tuple(args), []
            if args:
                raise sc.fail(f"{kind} takes fewer operands")
            try:
                ops.append(cls(out=out, **kw))
            except TypeError as e:
                raise sc.fail(f"bad fields for {kind}: {e}") from None
            continue
        head = sc.word()
        if head == "facts":
            facts = sc.literal()
            if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
                raise sc.fail("facts must be a list of strings")
            g.facts = set(facts)
        elif head == "meta":
            g.meta = sc.literal()
            if not isinstance(g.meta, dict):
                raise sc.fail("meta must be an object")
        elif head == "param":
            p = sc.name("@")
            shape, dtype = _shape(sc), sc.word()
            try:
                np.dtype(dtype)
            except TypeError:
                raise sc.fail(f"unknown dtype '{dtype}'") from None
            declared[p] = (shape, dtype)
            if sc.peek("="):
                sc.expect("=")
                inline[p] = _inline_array(sc, shape, dtype)
        elif head == "input":
            v = sc.name("%")
            g.values[v] = Value(v, _shape(sc), sc.word())
            g.inputs.append(v)
        elif head == "output":
            g.outputs.append(sc.name("%"))
        else:
            raise sc.fail(f"unknown statement '{head}'")
        sc.end()
    for op in ops:
        for p in op.param_names():
            if p not in declared:
                raise SnncError(f"snnir: op '{op.name}' uses param @{p}, which no 'param' "
                                "line declares")
    for p, (shape, dtype) in declared.items():
        if p in inline:
            g.params[p] = inline[p]
        elif params is None and not strict:
            g.params[p] = np.zeros(shape, dtype=dtype)
        else:
            if params is None or p not in params:
                raise SnncError(f"snnir: param @{p} has no values",
                                hint="give them inline (param @name [shape] dtype = "
                                     "[...]) or in a params .npz")
            a = params[p]
            if tuple(a.shape) != shape or str(a.dtype) != dtype:
                raise SnncError(f"snnir: param @{p} is {list(a.shape)} {a.dtype}, "
                                f"declared {list(shape)} {dtype}")
            g.params[p] = a
    return g.rebuild(ops)
