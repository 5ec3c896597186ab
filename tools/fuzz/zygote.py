"""A fork server for the fuzzer (tools/fuzz/run.py --fork): import snnc and its heavy
dependencies once, then run every fuzzed command in a fresh fork of this process.

A command run through `python -m snnc` spends most of a typical fuzz case importing numpy,
onnx and onnxruntime; a fork of a process that already imported them starts in
milliseconds. What the command sees is what a new process sees: its own session (so a
timeout kills everything it started), the fuzzer's resource limits and umask, its own
environment (TMPDIR, SNNC_*), working folder, stdin from /dev/null, stdout/stderr into
files, Python's default warning filters, and `python -m snnc ARGV` (or `python SCRIPT
ARGV`) run by runpy as the interpreter would. This process is single-threaded, so the
fork is safe.

Protocol: one JSON request per line on stdin
    {"program": "snnc"|"python", "argv": [...], "cwd": ..., "env": {...},
     "stdout": FILE, "stderr": FILE, "timeout": S, "mem_limit": B, "fsize_limit": B}
and one JSON answer per line on stdout
    {"status": waitstatus, "maxrss_kb": N, "wall": S, "timed_out": bool}
(or {"error": "..."} when the command could not be started).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time


def _child(req: dict) -> None:
    """In the fork: become the command. Never returns."""
    code = 1
    try:
        os.setsid()
        import resource

        os.umask(0o022)
        for lim, val in ((resource.RLIMIT_AS, req["mem_limit"]),
                         (resource.RLIMIT_FSIZE, req["fsize_limit"]), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(lim, (val, val))
        if os.geteuid() == 0:
            _drop_dac_caps()
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        import io

        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="surrogateescape")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        sys.__stdout__, sys.__stderr__, sys.__stdin__ = sys.stdout, sys.stderr, sys.stdin
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import tempfile
        import warnings

        tempfile.tempdir = None  # TMPDIR is the case's
        sys.dont_write_bytecode = True
        warnings.resetwarnings()
        for action, cat in _DEFAULT_FILTERS:
            warnings.simplefilter(action, cat, append=True)
        code = _run(req)
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:  # what the interpreter prints for an uncaught exception
        import traceback

        try:
            traceback.print_exc()
        except BaseException:
            pass
        code = 1
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            code = code or 120  # as the interpreter does when stdout cannot be flushed
    os._exit(code)


def _drop_dac_caps() -> None:
    """Root ignores file modes: drop the capabilities that do so (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER) from this process's effective, permitted and
    inheritable sets (no exec follows the fork, so dropping them from the bounding set
    alone, as a spawned command's preexec does, would not be enough)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: for what this command execs

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    mask = ~((1 << 1) | (1 << 2) | (1 << 3)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    data[0].inheritable &= mask
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _exit_code(e: SystemExit) -> int:
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        print(c, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _run(req: dict) -> int:
    import runpy

    argv = req["argv"]
    try:
        if req["program"] == "snnc":
            sys.argv = ["snnc", *argv]  # runpy sets argv[0] to the module's file
            sys.path[0] = os.getcwd()  # as `python -m` does
            runpy.run_module("snnc", run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        return _exit_code(e)
    return 0


#: the filters a fresh interpreter starts with (python -W none, no PYTHONWARNINGS)
_DEFAULT_FILTERS = [("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                    ("ignore", ImportWarning), ("ignore", ResourceWarning)]


def _serve_one(req: dict) -> dict:
    t0 = time.monotonic()
    try:
        pid = os.fork()
    except OSError as e:
        return {"error": f"fork failed: {e!r}"}
    if pid == 0:
        _child(req)
    timed_out = False
    while True:
        done, status, ru = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - t0 > req["timeout"]:
            _killpg(pid)
            done, status, ru = os.wait4(pid, 0)
            timed_out = True
            break
        time.sleep(0.005)
    wall = time.monotonic() - t0
    _killpg(pid)  # anything the command left running in its session
    return {"status": status, "maxrss_kb": ru.ru_maxrss, "wall": wall, "timed_out": timed_out}


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> None:
    # what every command would import anyway; warnings from importing them are theirs
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import snnc.cli  # noqa: F401
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        ans = _serve_one(json.loads(line))
        out.write(json.dumps(ans) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
