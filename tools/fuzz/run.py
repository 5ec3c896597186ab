"""Run snnc on hostile and broken inputs (tools/fuzz/cases.py) and count what happens.

    python tools/fuzz/run.py --cases 600 --seed 0 [--jobs 1] [--json FILE]
    python tools/fuzz/run.py --seed 0 --only c0123,c0456 --keep /tmp/fz   # reproduce

Every case runs in its own folder (CASE/work is the current directory, CASE/tmp is
TMPDIR) as a subprocess `python -m snnc ARGV` (or `python OUT/snn_runtime.py ...`) with a
timeout (10 s), an address-space limit (RLIMIT_AS, 4 GiB), a file-size limit, umask 022
and, when run as root, without the capabilities that bypass file permissions (so that
read-only folders are read-only). It prints the outcomes by input class, the slowest
case, the peak memory of the worst case, and every bad case grouped by root cause with a
command that reproduces it. Exit status 1 when any case is bad.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases as C  # noqa: E402

GiB = 1 << 30
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP = 24
#: CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
DAC_CAPS = (1, 2, 3)
#: at most this much of each output stream is read back
MAX_OUTPUT = 1 << 20


def subprocess_runner(timeout: float = 10.0, mem_limit: int = 4 * GiB,
                      fsize_limit: int = 2 * GiB, python: str = sys.executable,
                      mpl_dir: Path | None = None, shim: Path | None = None) -> C.Runner:
    """A runner for cases.execute_case: one subprocess per command, limited and measured
    (peak RSS from wait4); snnc from `shim` (cases.make_shim) when given."""
    def preexec() -> None:
        os.umask(0o022)
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if os.geteuid() == 0:  # root ignores file modes: drop the capabilities that do so
            for cap in DAC_CAPS:
                _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    def run(case: C.Case, argv: list[str], work: Path, tmp: Path) -> C.Execution:
        cmd = [python, "-m", "snnc", *argv] if case.program == "snnc" else [python, *argv]
        env = C.child_env(tmp, shim, mpl_dir)
        out_p, err_p = work.parent / "stdout", work.parent / "stderr"
        t0 = time.monotonic()
        with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
            try:
                p = subprocess.Popen(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                     stdout=fo, stderr=fe, preexec_fn=preexec,
                                     start_new_session=True)
            except (OSError, ValueError) as e:  # e.g. a NUL byte in argv
                return C.Execution(argv, None, "", "", 0.0,
                                   exception=f"Traceback (most recent call last)\n"
                                             f"fuzzer: cannot start: {e!r}")
            timed_out = False
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - t0 > max(timeout, case.seconds):
                    _killpg(p.pid)
                    pid, status, ru = os.wait4(p.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.01)
            wall = time.monotonic() - t0
            _killpg(p.pid)  # anything the command left running in its session
            p.returncode = os.waitstatus_to_exitcode(status)
        code = p.returncode
        return C.Execution(argv, code if code >= 0 else None, _read(out_p), _read(err_p), wall,
                           peak_rss_kb=ru.ru_maxrss, signal=-code if code < 0 else None,
                           timed_out=timed_out)
    return run


def fork_runner(timeout: float = 10.0, mem_limit: int = 4 * GiB,
                fsize_limit: int = 2 * GiB, python: str = sys.executable,
                mpl_dir: Path | None = None, shim: Path | None = None) -> C.Runner:
    """Like subprocess_runner, but each command is a fork of a server process that
    imported snnc, numpy, onnx and onnxruntime once (tools/fuzz/zygote.py): the same
    limits, session, environment and judging, without the ~1 s of imports per command.
    One server per calling thread (a server runs one command at a time)."""
    local = threading.local()
    servers: list[subprocess.Popen] = []
    lock = threading.Lock()

    def server() -> subprocess.Popen:
        srv = getattr(local, "srv", None)
        if srv is None or srv.poll() is not None:
            env = C.child_env(None, shim, mpl_dir)
            srv = subprocess.Popen([python, str(Path(__file__).with_name("zygote.py"))],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                   text=True, bufsize=1)
            local.srv = srv
            with lock:
                servers.append(srv)
        return srv

    def run(case: C.Case, argv: list[str], work: Path, tmp: Path) -> C.Execution:
        out_p, err_p = work.parent / "stdout", work.parent / "stderr"
        try:
            req = json.dumps({
                "program": case.program, "argv": argv, "cwd": str(work),
                "env": C.child_env(tmp, shim, mpl_dir), "stdout": str(out_p),
                "stderr": str(err_p), "timeout": max(timeout, case.seconds),
                "mem_limit": mem_limit, "fsize_limit": fsize_limit})
            if any("\0" in x for x in argv):  # exec refuses a NUL in argv
                raise ValueError("embedded null byte")
        except (ValueError, TypeError) as e:
            return C.Execution(argv, None, "", "", 0.0,
                               exception=f"Traceback (most recent call last)\n"
                                         f"fuzzer: cannot start: {e!r}")
        srv = server()
        srv.stdin.write(req + "\n")
        srv.stdin.flush()
        ans = json.loads(srv.stdout.readline())
        if "error" in ans:
            return C.Execution(argv, None, "", "", 0.0, exception=f"Traceback (most recent "
                               f"call last)\nfuzzer: cannot start: {ans['error']}")
        code = os.waitstatus_to_exitcode(ans["status"])
        return C.Execution(argv, code if code >= 0 else None, _read(out_p), _read(err_p),
                           ans["wall"], peak_rss_kb=ans["maxrss_kb"],
                           signal=-code if code < 0 else None, timed_out=ans["timed_out"])

    def close() -> None:
        for srv in servers:
            with contextlib.suppress(OSError):
                srv.stdin.close()
            srv.wait()
    run.close = close  # type: ignore[attr-defined]
    return run


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(p: Path) -> str:
    with open(p, "rb") as f:
        data = f.read(MAX_OUTPUT + 1)
    text = data[:MAX_OUTPUT].decode("utf-8", "surrogateescape")
    return text + ("\n[fuzzer: output cut at 1 MiB]" if len(data) > MAX_OUTPUT else "")


# ====================================================================== report ============
def signature(problem: str) -> str:
    """A root-cause key for a problem line: tracebacks by exception type and place,
    multi-line errors by what came first, the rest with numbers and names blanked."""
    p = re.sub(r"^\[[^\]]*\] ", "", problem)
    if p.startswith("traceback: "):
        body = p[len("traceback: "):]
        where, _, exc = body.partition(": ")
        etype = exc.split(":", 1)[0].strip()
        return f"traceback {etype} at {where}"
    if p.startswith("error is "):
        first = p.split("the first: ", 1)[-1]
        if "onnxruntime" in first:
            kind = "an onnxruntime log line"
        elif "Warning" in first:
            kind = re.sub(r".*?(\w+Warning).*", r"a Python \1", first)
        elif first.startswith("usage:"):
            kind = "an argparse usage block"
        elif first.startswith("Traceback"):
            kind = "a traceback"
        elif first.startswith("snnc: error:"):
            kind = "'snnc: error:' with a line break in it"
        else:
            kind = "'" + _blank(first)[:60] + "'"
        return f"error not one line: starts with {kind}"
    if p.startswith("control characters in"):
        return p.split(":", 1)[0]
    if p.startswith("stderr output on success"):
        first = p.split(": ", 1)[1]
        if "onnxruntime" in first:
            return "stderr output on success: an onnxruntime log line"
        if "Warning" in first:
            return "stderr output on success: " + re.sub(r".*?(\w+Warning).*", r"a \1", first)
        return "stderr output on success: " + _blank(first)[:60]
    if p.startswith(("failed run", "wrote files", "deleted files", "wrote outside",
                     "left temporary")):
        head, _, rest = p.partition(": ")
        return f"{head}: {_blank(rest)[:50]}"
    if p.startswith("check says compilable"):
        return "check says compilable, compile refuses: " + _blank(
            p.split("refuses: ", 1)[-1].replace("snnc: error: ", ""))[:70]
    if p.startswith("generated C does not build"):
        return "generated C does not build: " + _blank(p.split(": ", 1)[1].split(
            "error:", 1)[-1])[:60]
    return _blank(p)[:90]


def _blank(s: str) -> str:
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\"[^\"]*\"", "\"…\"", s)
    s = re.sub(r"\d+", "N", s)
    return s


def repro(res: C.Result, seed: int) -> str:
    """A command line that materializes the case, runs it and leaves it in /tmp/fz-ID,
    then the command itself."""
    argv = res.executions[0].argv if res.executions else []
    prog = "python -m snnc" if res.case.program == "snnc" else "python"
    cid = f"c{res.case.index:04d}"
    shown = " ".join(C.shell_quote(a) for a in argv)
    return (f"python tools/fuzz/run.py --seed {seed} --only {cid} --keep /tmp/fz-{cid}; "
            f"cd /tmp/fz-{cid}/{cid}/work && {prog} {shown}")


def detail(res: C.Result, sig: str) -> str:
    """What shows the root cause: the traceback's last frame, the offending output lines,
    or the problem itself."""
    if sig.startswith("traceback"):
        for ex in res.executions:
            tb = ex.exception or (ex.stderr if "Traceback (most recent" in ex.stderr else "")
            if tb:
                return C.escape(C.last_frame(tb))[:400]
    problem = next((p for p in res.problems if signature(p) == sig), "")
    ex = res.last
    if ex is not None and sig.startswith("control characters in"):
        text = ex.stdout if "stdout" in sig else ex.stderr
        hits = [ln for ln in text.splitlines() if C.controls(ln)]
        return " | ".join(C.escape(ln[:160]) for ln in hits[:2])
    if ex is not None and sig.startswith(("error not one line", "stderr output on success",
                                          "exit code")):
        return " | ".join(C.escape(ln[:160]) for ln in ex.stderr.strip().splitlines()[:3])
    return C.escape(problem)[:400]


def table(rows: list[list[str]], head: list[str]) -> str:
    w = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w[i]}}}" for i in range(len(head)))
    return "\n".join([fmt.format(*head), fmt.format(*("-" * x for x in w))]
                     + [fmt.format(*map(str, r)) for r in rows])


OUTCOMES = ("compiled", "clean error", "not compilable", "bad")


def report(results: list[C.Result], seed: int, *, verbose: bool = True) -> str:
    lines = []
    by = defaultdict(Counter)
    for r in results:
        by[r.case.cls][r.outcome] += 1
    rows = []
    for cls in C.CLASSES:
        if by[cls]:
            rows.append([cls, *(by[cls][o] for o in OUTCOMES), sum(by[cls].values())])
    tot = Counter(r.outcome for r in results)
    rows.append(["total", *(tot[o] for o in OUTCOMES), len(results)])
    lines.append(f"snnc fuzz: {len(results)} cases, seed {seed}")
    lines.append(table(rows, ["class", *OUTCOMES, "cases"]))
    if results:
        slow = max(results, key=lambda r: max((e.wall for e in r.executions), default=0))
        sw = max(e.wall for e in slow.executions) if slow.executions else 0
        lines.append(f"slowest case: {sw:.2f} s  {slow.case.id}  ({C.escape(slow.case.description)}"
                     f"; {slow.outcome})")
        mem = [r for r in results if r.peak_rss_kb]
        if mem:
            worst = max(mem, key=lambda r: r.peak_rss_kb)
            lines.append(f"peak memory (worst case): {worst.peak_rss_kb / 1024:.0f} MiB  "
                         f"{worst.case.id}  ({C.escape(worst.case.description)}; "
                         f"{worst.outcome})")
            med = sorted(r.peak_rss_kb for r in mem)[len(mem) // 2]
            lines.append(f"median peak RSS: {med / 1024:.0f} MiB; cases run isolated: "
                         f"{sum(r.case.isolate for r in results)}")
    bad = [r for r in results if r.outcome == "bad"]
    if not bad:
        return "\n".join(lines)
    groups: dict[str, list[C.Result]] = defaultdict(list)
    for r in bad:
        for sig in dict.fromkeys(signature(p) for p in r.problems):
            groups[sig].append(r)
    lines.append("")
    lines.append(f"bad cases by root cause ({len(groups)} causes, most frequent first):")
    for sig, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        classes = Counter(r.case.cls for r in rs)
        lines.append(f"\n[{len(rs)}] {C.escape(sig)}")
        lines.append("    classes: " + ", ".join(f"{c} {n}" for c, n in classes.most_common()))
        ex = rs[0]
        lines.append(f"    e.g. {ex.case.id}: {C.escape(ex.case.description)}")
        lines.append(f"    detail: {detail(ex, sig)}")
        lines.append(f"    repro: {repro(ex, seed)}")
    if verbose:
        lines.append("\nevery bad case:")
        for r in bad:
            lines.append(f"  {r.case.id} [{r.case.cls}] {C.escape(r.case.description)}")
            for p in r.problems:
                lines.append(f"      - {C.escape(p)[:300]}")
            ex = r.last
            if ex is not None and ex.stderr.strip():
                for ln in ex.stderr.strip().splitlines()[-3:]:
                    lines.append(f"      | {C.escape(ln[:200])}")
    return "\n".join(lines)


def to_json(results: list[C.Result], seed: int) -> dict:
    return {"seed": seed, "cases": [{
        "id": r.case.id, "class": r.case.cls, "name": r.case.name,
        "description": r.case.description, "outcome": r.outcome, "problems": r.problems,
        "isolate": r.case.isolate, "wall_s": round(r.wall, 3),
        "peak_rss_kb": r.peak_rss_kb,
        "commands": [{"program": r.case.program, "argv": e.argv, "exit": e.code,
                      "signal": e.signal, "timed_out": e.timed_out, "wall_s": round(e.wall, 3),
                      "peak_rss_kb": e.peak_rss_kb, "stdout": e.stdout[:4000],
                      "stderr": e.stderr[:4000]} for e in r.executions]}
        for r in results]}


# ====================================================================== main ==============
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=600, help="how many cases (default 600)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--json", metavar="FILE", help="write every result as JSON")
    ap.add_argument("--only", metavar="IDS", help="comma-separated case ids or numbers "
                    "(c0123 or 123) to run")
    ap.add_argument("--classes", metavar="LIST", help="only these input classes")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per command")
    ap.add_argument("--mem-limit", type=float, default=4.0, help="RLIMIT_AS in GiB")
    ap.add_argument("--rss-limit", type=float, default=1536, help="a peak RSS above this "
                    "many MiB is a memory blow-up (default 1536)")
    ap.add_argument("--keep", metavar="DIR", help="run the cases in DIR and keep them "
                    "(default: a temporary folder, deleted)")
    ap.add_argument("--spawn", action="store_true", help="start every command as a new "
                    "`python -m snnc` (default: fork it from a server that imported snnc "
                    "once, tools/fuzz/zygote.py; the same limits and judging, ~1 s less "
                    "per command)")
    ap.add_argument("--quiet", action="store_true", help="no list of every bad case")
    ap.add_argument("--installed", action="store_true", help="fuzz the installed snnc "
                    "(default: the source tree this script belongs to, through PYTHONPATH)")
    a = ap.parse_args(argv)

    if a.only:
        wanted = [int(re.sub(r"^c0*(?=\d)", "", t.split(":")[0]) or 0)
                  for t in a.only.split(",")]
        todo = [c for c in C.generate(max(wanted) + 1, a.seed) if c.index in wanted]
    else:
        todo = C.generate(a.cases, a.seed)
    if a.classes:
        keep = set(a.classes.split(","))
        todo = [c for c in todo if c.cls in keep]
    root = Path(a.keep).resolve() if a.keep else Path(tempfile.mkdtemp(prefix="snnc-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    shim = None if a.installed else C.make_shim(C.REPO, root / "_cache" / "shim")
    assets = C.Assets(root / "_cache", shim=shim)
    make_runner = subprocess_runner if a.spawn else fork_runner
    runner = make_runner(a.timeout, int(a.mem_limit * GiB), mpl_dir=root / "_cache" / "mpl",
                         shim=shim)
    rss_kb = int(a.rss_limit * 1024)
    t0 = time.monotonic()

    def one(case: C.Case) -> C.Result:
        d = root / f"c{case.index:04d}"
        C.cleanup(d)
        d.mkdir(parents=True)
        try:
            res = C.execute_case(case, d, assets, runner, rss_kb)
        except Exception as e:  # a case that cannot be materialized is a fuzzer bug
            import traceback

            res = C.Result(case, "bad", [f"fuzzer error: {e!r}"], [C.Execution(
                [], None, "", traceback.format_exc(), 0.0)])
        if not a.keep:
            C.cleanup(d)
        return res

    results: list[C.Result] = []
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        for i, res in enumerate(pool.map(one, todo)):
            results.append(res)
            if res.outcome == "bad":
                print(f"[{i + 1}/{len(todo)}] bad {res.case.id}: "
                      f"{C.escape(res.problems[0])[:160] if res.problems else ''}",
                      file=sys.stderr, flush=True)
            elif (i + 1) % 50 == 0:
                print(f"[{i + 1}/{len(todo)}] {time.monotonic() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    getattr(runner, "close", lambda: None)()
    print(report(results, a.seed, verbose=not a.quiet))
    print(f"\n{len(todo)} cases in {time.monotonic() - t0:.0f} s")
    if a.only:
        for r in results:
            ex = r.executions[0] if r.executions else None
            if ex is not None:
                prog = "python -m snnc" if r.case.program == "snnc" else "python"
                print(f"{r.case.id}: cd {root}/c{r.case.index:04d}/work && {prog} "
                      + " ".join(C.shell_quote(x) for x in ex.argv))
    if a.json:
        Path(a.json).write_text(json.dumps(to_json(results, a.seed), indent=1) + "\n")
    if not a.keep:
        C.cleanup(root)
    return 1 if any(r.outcome == "bad" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
