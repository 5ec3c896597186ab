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
#: names from the model in string literals and comments are cut to this many characters
#: (C99 guarantees string literals of 4095 characters and logical lines of 4095)
MAX_TEXT = 200
#: C prefixes that would clash with the files the C backend writes beside NAME.c/NAME.h
#: (main_example.c; make's built-in rule `Makefile: Makefile.c` would overwrite the
#: Makefile) or with target names make and CMake reserve; compared case-insensitively
RESERVED_PREFIXES = frozenset({
    "main_example", "makefile", "gnumakefile", "cmakelists", "footprint", "all", "clean",
    "install", "test", "help", "package", "package_source", "preinstall", "edit_cache",
    "rebuild_cache", "zero_check", "all_build", "run_tests"})


def _tag(text: str) -> str:
    """A short deterministic hash of `text` (what stays unique when a name is cut)."""
    import hashlib

    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def sanitize(name: str, max_len: int = MAX_IDENT) -> str:
    """A valid C identifier derived from `name` (ASCII letters, digits, underscores; not a
    keyword; not reserved: never starts with an underscore or a digit). A name longer than
    max_len is cut and ends in a hash of the whole name, so different long names stay
    different."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if not s:
        s = "x"
    if s[0].isdigit():
        s = "n" + s
    if len(s) > max_len:
        s = s[:max_len - 7].rstrip("_") + "_" + _tag(name)
    s = s.rstrip("_") or "x"
    if s in C_KEYWORDS:
        s += "_"
    return s


def c_prefix(name: str, max_len: int = 24) -> str:
    """The prefix of the generated C files and symbols: sanitize(name), with `_net`
    appended when it would clash with a generated file or a reserved build target."""
    s = sanitize(name, max_len)
    if s.lower() in RESERVED_PREFIXES:
        s += "_net"
    return s


def shorten(text: str, max_len: int = MAX_TEXT) -> str:
    """`text` cut to max_len characters, ending in '~' and a hash of the whole when cut."""
    if len(text) <= max_len:
        return text
    return text[:max_len - 8] + "~" + _tag(text)


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
    delimiters, no trigraphs; a long name is shortened with a hash (shorten)."""
    s = shorten(text).encode("ascii", "backslashreplace").decode("ascii")
    s = "".join(c if " " <= c <= "~" else " " for c in s)
    s = s.replace("*/", "*_/").replace("/*", "/_*").replace("??", "?_?")
    return s


def c_string(text: str) -> str:
    """A C string literal holding the UTF-8 bytes of `text` (octal escapes for everything
    outside printable ASCII, so no escape can swallow a following digit); a long name is
    shortened with a hash (shorten), so no literal reaches C99's 4095-character limit."""
    out = []
    for byte in shorten(text).encode("utf-8", "surrogatepass"):
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
