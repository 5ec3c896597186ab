"""The one error type users see.

Every failure a user can cause (bad file, unsupported op, wrong shapes, missing calibration
data, ...) is a SnncError carrying the ONNX node it concerns and what to do about it. The CLI
prints `str(err)` on one line and exits with `err.exit_code` (2).
"""
from __future__ import annotations


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
        # One line: messages may quote user-supplied names containing newlines.
        return " ".join(text.split("\n"))
