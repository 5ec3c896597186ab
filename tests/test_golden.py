"""Golden-file tests of the passes, FileCheck style (like LLVM's lit + FileCheck).

Every tests/golden/*.snnir is a small text IR whose comment lines hold the test:

    # RUN: snnc opt %s --pipeline fold-batchnorm [--calib %S/data/calib.npz]
    # RUN: not snnc opt %s --pipeline normalize       (must fail; stderr is checked)
    # CHECK: param @fc1.bias.bn [3] float32 = [0.2,0.45,-0.1]

Each RUN line runs snnc in-process (%s: the file, %S: its folder) and pipes its output
(stdout, or stderr for `not`) to the `filecheck` package with the file's CHECK lines
(a RUN line may name its own prefix with --check-prefix P). Weights are inline, so every
number a pass computes is pinned.
"""
from __future__ import annotations

import contextlib
import io
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from snnc.cli import main

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.snnir"))


def run_lines(path: Path) -> list[str]:
    return [line.split("RUN:", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("# RUN:")]


def run_snnc(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def filecheck(check_file: Path, text: str, prefix: str = "CHECK"
              ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "filecheck", str(check_file),
                           f"--check-prefix={prefix}"], input=text, capture_output=True,
                          text=True, timeout=60)


def test_every_pass_has_a_golden_file():
    from snnc.passes import PASSES

    covered = {w for f in FILES for line in run_lines(f) for w in
               line.replace(",", " ").replace("{", " ").replace('"', " ").split()}
    assert not sorted(set(PASSES) - covered)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_golden(path: Path):
    runs = run_lines(path)
    assert runs, f"{path.name} has no RUN line"
    for line in runs:
        line = line.replace("%s", str(path)).replace("%S", str(path.parent))
        words = shlex.split(line)
        prefix = "CHECK"
        if "--check-prefix" in words:  # the RUN line's own CHECK prefix
            i = words.index("--check-prefix")
            prefix = words[i + 1]
            del words[i:i + 2]
        expect_fail = words[0] == "not"
        if expect_fail:
            words = words[1:]
        assert words[0] == "snnc", line
        code, out, err = run_snnc(words[1:])
        if expect_fail:
            assert code != 0, f"{line}: expected a failure, got exit 0"
            text = err
        else:
            assert code == 0, f"{line}: exit {code}: {err}"
            text = out
        res = filecheck(path, text, prefix)
        assert res.returncode == 0, f"{line}\n{res.stdout}{res.stderr}\n--- output ---\n{text}"


def test_a_wrong_check_fails(tmp_path):
    """The harness can fail: a CHECK line the output does not have is reported."""
    src = (GOLDEN / "fold-batchnorm.snnir").read_text()
    bad = tmp_path / "bad.snnir"
    bad.write_text(src.replace("[0.2,0.45,-0.1]", "[0.2,0.45,-0.2]"))
    code, out, _ = run_snnc(["opt", str(bad), "--pipeline", "fold-batchnorm"])
    assert code == 0
    assert filecheck(bad, out).returncode != 0


def test_opt_round_trips_and_is_deterministic(tmp_path):
    """No pipeline: parse, verify, print; the printed IR parses back to the same text."""
    src = GOLDEN / "fold-affine.snnir"
    code, once, _ = run_snnc(["opt", str(src)])
    assert code == 0
    again = tmp_path / "again.snnir"
    again.write_text(once)
    code, twice, _ = run_snnc(["opt", str(again)])
    assert code == 0 and twice == once
