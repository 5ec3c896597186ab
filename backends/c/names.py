"""C spelling of things that come from ONNX files: identifiers, comments, string and
number literals.

Names in an ONNX file can contain anything (spaces, quotes, `*/`, newlines, unicode, C
keywords), so they never reach the C code unescaped: identifiers are sanitized and
de-duplicated, comments and strings escaped. Numbers are printed so that they round-trip
exactly (float32 with 9 significant digits) and identically on every run.
"""
from __future__ import annotations

import re

import numpy as np

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof "
    "_Atomic _Generic _Noreturn _Static_assert _Thread_local main".split())
#: identifiers longer than this are cut (C99 guarantees 31 significant external chars)
MAX_IDENT = 31


def sanitize(name: str, max_len: int = MAX_IDENT) -> str:
    """A valid C identifier derived from `name` (ASCII letters, digits, underscores; not a
    keyword; not reserved: never starts with an underscore or a digit)."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if not s:
        s = "x"
    if s[0].isdigit():
        s = "n" + s
    s = s[:max_len].rstrip("_") or "x"
    if s in C_KEYWORDS:
        s += "_"
    return s


class Namer:
    """Hands out unique sanitized identifiers: the second name that sanitizes to an
    identifier already given gets a numeric suffix."""

    def __init__(self, reserved: set[str] | None = None):
        self.used: set[str] = set(reserved or ())

    def __call__(self, name: str, max_len: int = 24) -> str:
        base = sanitize(name, max_len)
        ident, i = base, 2
        while ident in self.used:
            ident = f"{base}_{i}"
            i += 1
        self.used.add(ident)
        return ident


def comment(text: str) -> str:
    """`text` made safe inside a /* ... */ comment: one line, ASCII, no comment
    delimiters, no trigraphs."""
    s = text.encode("ascii", "backslashreplace").decode("ascii")
    s = "".join(c if " " <= c <= "~" else " " for c in s)
    s = s.replace("*/", "*_/").replace("/*", "/_*").replace("??", "?_?")
    return s


def c_string(text: str) -> str:
    """A C string literal holding the UTF-8 bytes of `text` (octal escapes for everything
    outside printable ASCII, so no escape can swallow a following digit)."""
    out = []
    for byte in text.encode("utf-8"):
        c = chr(byte)
        if c in '"\\?':
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_float(v: float) -> str:
    """A float32 literal that converts back to exactly the same float32."""
    s = f"{float(np.float32(v)):.9g}"
    if not any(ch in s for ch in ".en"):
        s += ".0"
    return s + "f"


def c_int(v: int) -> str:
    """An integer literal of any int32/int64 value (INT32_MIN needs care in C)."""
    v = int(v)
    if v == -(2 ** 31):
        return "(-2147483647 - 1)"
    if v < -(2 ** 31) or v > 2 ** 31 - 1:
        return f"INT64_C({v})"
    return str(v)
