"""The one error type users see.

Every failure a user can cause (bad file, unsupported op, wrong shapes, missing calibration
data, ...) is a SnncError carrying the ONNX node it concerns and what to do about it. The CLI
prints `str(err)` on one line and exits with `err.exit_code` (2).
"""
from __future__ import annotations

import unicodedata
from typing import Any

_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: control, format (bidi overrides, zero-width), surrogate, line/paragraph separators
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(s: Any, keep: str = "") -> str:
    """str(s) with every control, format, surrogate and line-separator character written
    as a Python-style escape (ESC as \\x1b, a bidi override as \\u202e, a newline as
    \\n), except the characters in `keep`. The one function every name from a model goes
    through before it reaches a terminal or a report: a name cannot move the cursor,
    clear the screen, forge a line or reorder what is printed around it."""
    out = []
    for ch in str(s):
        if ch not in keep and unicodedata.category(ch) in _HIDDEN:
            o = ord(ch)
            out.append(_NAMED_ESCAPES.get(ch) or (
                f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}" if o <= 0xFFFF
                else f"\\U{o:08x}"))
        else:
            out.append(ch)
    return "".join(out)


class SnncError(Exception):
    """A user-facing compile error.

    node: the ONNX node name (or op name) the error is about, if any.
    hint: what the user can do about it.
    """

    exit_code = 2

    def __init__(self, message: str, *, node: str | None = None, hint: str | None = None):
        self.message = message
        self.node = node
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.message
        if self.node:
            text = f"node '{self.node}': {text}"
        if self.hint:
            text = f"{text}; {self.hint}"
        # One line, nothing a terminal interprets: messages quote names from the model.
        return printable(text)
