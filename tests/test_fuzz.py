"""Hostile and broken inputs (issue 19): snnc answers every one with a compiled model or
one line `snnc: error: ...` and exit code 2 (`snnc check`: exit 1 when it cannot compile)
- never a traceback, another exit code, a hang, a memory blow-up, raw control characters
on the terminal, files written outside its outputs, a partial OUT after a failure, or
user files deleted.

The cases come from tools/fuzz/cases.py (mutated ONNX models, data files, CLI values, OUT
folders, text IR, the standalone runtime); tools/fuzz/run.py runs thousands of them with
a report by class. Here FUZZ_CASES of them run in-process through snnc.cli.main (stdout
and stderr captured at the file-descriptor level, Python warnings counted as the stderr
lines they would print, a per-case timer), and in a limited subprocess those that may
allocate or loop without bound (and, as root, those that need file permissions), plus a
few hundred hypothesis examples of flag values and random mutations. Marked slow: deselect
with -m 'not slow'.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: how many catalogue cases run here (tools/fuzz/run.py runs any number)
FUZZ_CASES = 200
SEED = 0
#: seconds per command (CI budget of the issue)
TIMEOUT = 10.0
#: a peak RSS above this is a memory blow-up (subprocess cases)
RSS_LIMIT_KB = 1536 * 1024


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


fuzz_run = _load("snnc_fuzz_run", ROOT / "tools" / "fuzz" / "run.py")
fuzz = fuzz_run.C  # tools/fuzz/cases.py

CASES = fuzz.generate(FUZZ_CASES, SEED)


def _id(case) -> str:
    return re.sub(r"[^\w.:=,+@-]", "_", case.id)[:90]


# ------------------------------------------------------------------ runners ---------------
class _Timeout(BaseException):
    """Raised by the timer inside snnc's code: not an Exception, so nothing swallows it."""


@contextlib.contextmanager
def _limits(seconds: float):
    """A wall-clock alarm and an address-space cap (3 GiB above what the test process
    maps) around one in-process command."""
    def on_alarm(signum, frame):
        raise _Timeout()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as f:
            vms = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = vms + (3 << 30)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError):
        pass
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def in_process_runner(capfd: pytest.CaptureFixture[str]):
    """cases.Runner that calls snnc.cli.main(argv) in this process."""
    from snnc.cli import main

    def run(case, argv, work, tmp):
        capfd.readouterr()
        cwd, tempdir, dwb = os.getcwd(), tempfile.tempdir, sys.dont_write_bytecode
        umask = os.umask(0o022)
        code, exc, timed_out = None, None, False
        t0 = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            # what a real run prints: Python's default filters (ResourceWarning,
            # DeprecationWarning outside __main__, ... are ignored)
            warnings.resetwarnings()
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                             ResourceWarning):
                warnings.simplefilter("ignore", category)
            try:
                os.chdir(work)
                tempfile.tempdir = str(tmp)
                sys.dont_write_bytecode = True
                with _limits(TIMEOUT):
                    code = main(list(argv))
            except _Timeout:
                timed_out = True
            except SystemExit as e:  # --help, --version
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                exc = traceback.format_exc()
                code = 1
            finally:
                os.chdir(cwd)
                tempfile.tempdir = tempdir
                sys.dont_write_bytecode = dwb
                os.umask(umask)
        wall = time.monotonic() - t0
        out, err = capfd.readouterr()
        # a warning is a stderr line in a real run
        shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                        for w in caught)
        return fuzz.Execution(list(argv), code, out, shown + err, wall, timed_out=timed_out,
                              exception=exc)
    return run


def _shim(base: Path) -> Path | None:
    """Subprocesses run the snnc this process imported (a source tree through a PYTHONPATH
    shim, or the installed package)."""
    import snnc

    src = Path(snnc.__file__).resolve().parents[1]
    if (src / "compiler" / "__init__.py").resolve() == Path(snnc.__file__).resolve():
        return fuzz.make_shim(src, base / "shim")
    return None


@pytest.fixture(scope="session")
def fuzz_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-assets")
    shim = _shim(base)
    assets = fuzz.Assets(base / "cache", shim=shim)
    sub = fuzz_run.subprocess_runner(TIMEOUT, shim=shim, mpl_dir=base / "mpl")
    return assets, sub


def _needs_subprocess(case) -> bool:
    return (case.isolate or case.program != "snnc"
            or (case.needs_perms and os.geteuid() == 0))


def _run(case, case_root: Path, fuzz_env, capfd):
    assets, sub = fuzz_env
    runner = sub if _needs_subprocess(case) else in_process_runner(capfd)
    res = fuzz.execute_case(case, case_root, assets, runner, RSS_LIMIT_KB)
    return res


def _explain(res) -> str:
    lines = [f"{res.case.id}: {fuzz.escape(res.case.description)} -> {res.outcome}"]
    lines += [f"  - {fuzz.escape(p)[:400]}" for p in res.problems]
    for ex in res.executions:
        lines.append("  $ snnc " + " ".join(fuzz.shell_quote(a) for a in ex.argv)[:400]
                     + f"   (exit {ex.code}, {ex.wall:.2f} s)")
        tail = (ex.exception or ex.stderr).strip().splitlines()[-4:]
        lines += [f"  | {fuzz.escape(ln)[:200]}" for ln in tail]
    return "\n".join(lines)


def _assert_ok(res) -> None:
    budget = max(TIMEOUT, res.case.seconds)
    if res.outcome not in fuzz.OK_OUTCOMES or any(ex.wall > budget for ex in res.executions):
        pytest.fail(_explain(res), pytrace=False)


# ------------------------------------------------------------------ the catalogue ---------
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_hostile_input(case, fuzz_env, capfd, tmp_path):
    _assert_ok(_run(case, tmp_path / "case", fuzz_env, capfd))


def test_every_class_is_fuzzed():
    assert {c.cls for c in CASES} == set(fuzz.CLASSES)


# ------------------------------------------------------------------ hypothesis ------------
#: flags whose values come from hypothesis: (flag, command)
FLAGS = [("--timesteps", "compile"), ("--fit", "compile"), ("--norm", "compile"),
         ("--v-init", "compile"), ("--leak", "ttfs"), ("--c-name", "c"), ("--seed", "compile"),
         ("--backend", "compile"), ("--pipeline", "compile"), ("--timesteps", "eval"),
         ("--batch", "eval"), ("--target", "place")]

values = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
            max_size=30),
    st.integers(-(2 ** 70), 2 ** 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(-5, 300).map(str), max_size=4).map(",".join),
    st.tuples(st.integers(-3, 2 ** 40), st.integers(-3, 2 ** 40)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.sampled_from(["max", "clip", "channel:99.9", "percentile:", "c,place", "sim",
                     "loihi2", "fold-batchnorm", "normalize{method=max}"]))


def _flag_case(flag: str, cmd: str, value: str):
    def make(work, assets):
        assets.write_model(work)
        assets.write_calib(work)
        assets.write_data(work)
        if cmd == "eval":
            assets.out(work)
            return ["eval", fuzz.OUT, "--data", fuzz.DATA, "--no-diagnostics",
                    *(["--timesteps", "8"] if flag != "--timesteps" else []), flag, value]
        if cmd == "place":
            assets.out(work)
            return ["place", fuzz.OUT, flag, value]
        extra = {"ttfs": ["--coding", "ttfs"], "c": ["--backend", "c"]}.get(cmd, [])
        return fuzz._compile(fuzz.MODEL, *extra, flag, value)
    # big numbers may allocate: those run in a limited subprocess
    big = any(len(d) > 6 for d in re.findall(r"\d+", value))
    return fuzz.Case("cli", f"hypothesis {flag}", f"{cmd} {flag} {fuzz._hostile(value)}", make,
                     outputs=(fuzz.OUT,) if cmd != "eval" else fuzz.EVAL_OUT,
                     isolate=big, checks=(fuzz.check_c_builds,) if cmd == "c" else ())


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(flag=st.sampled_from(FLAGS), value=values)
def test_hypothesis_flag_values(flag, value, fuzz_env, capfd):
    case = _flag_case(*flag, value)
    with tempfile.TemporaryDirectory(prefix="snnc-fuzz-") as d:
        res = _run(case, Path(d) / "case", fuzz_env, capfd)
        fuzz.cleanup(Path(d) / "case")
    _assert_ok(res)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cls=st.sampled_from(sorted(fuzz.STREAMS)), seed=st.integers(0, 2 ** 32 - 1))
def test_hypothesis_random_mutations(cls, seed, fuzz_env, capfd):
    """One seeded random mutation of a class (byte flips, graph rewiring, edits of
    graph.json or the text IR, ...)."""
    case = next(fuzz.STREAMS[cls](np.random.default_rng(seed)))
    with tempfile.TemporaryDirectory(prefix="snnc-fuzz-") as d:
        res = _run(case, Path(d) / "case", fuzz_env, capfd)
        fuzz.cleanup(Path(d) / "case")
    _assert_ok(res)
