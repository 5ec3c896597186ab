"""Output ownership (issue 19): snnc replaces only folders it wrote, never follows or
renames a symbolic link, never deletes a file it did not write, writes with the umask's
permissions, and leaves nothing behind on failure."""
from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path

import pytest
from conftest import EXAMPLES
from snnc.cli import main
from snnc.fsutil import write_file_atomic, write_tree_atomic
from snnc.ir.errors import SnncError

MODEL, CALIB = str(EXAMPLES / "mnist_cnn.onnx"), str(EXAMPLES / "mnist_calib.npz")


def run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, err.getvalue()


def test_foreign_folder_refused_unless_force_and_its_files_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = run(MODEL, "-o", str(out), "--calib", CALIB)
    assert code == 2 and "not empty and was not written by snnc" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert run(MODEL, "-o", str(out), "--calib", CALIB, "--force")[0] == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "graph.json").is_file()
    # now snnc's: a recompile keeps the user's file without --force
    assert run(MODEL, "-o", str(out), "--calib", CALIB, "--norm", "max")[0] == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_source_model_inside_out_survives(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    model = out / "model.onnx"
    model.write_bytes(Path(MODEL).read_bytes())
    assert run(str(model), "-o", str(out), "--calib", CALIB, "--force")[0] == 0
    assert run(str(model), "-o", str(out), "--calib", CALIB)[0] == 0
    assert model.read_bytes() == Path(MODEL).read_bytes()


def test_a_foreign_file_with_an_output_name_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("my report")
    code, err = run(MODEL, "-o", str(out), "--calib", CALIB, "--force")
    assert code == 2 and "report.json" in err
    assert (out / "report.json").read_text() == "my report"
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


def test_symlinked_out_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    code, err = run(MODEL, "-o", str(link), "--calib", CALIB)
    assert code == 2 and "symbolic link" in err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_permissions_follow_the_umask_and_the_replaced_folder(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert run(MODEL, "-o", str(out), "--calib", CALIB)[0] == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o755
        assert stat.S_IMODE((out / "report.json").stat().st_mode) == 0o644
        write_file_atomic(tmp_path / "x.json", b"{}")
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
        empty = tmp_path / "shared"
        empty.mkdir()
        empty.chmod(0o775)
        assert run(MODEL, "-o", str(empty), "--calib", CALIB)[0] == 0
        assert stat.S_IMODE(empty.stat().st_mode) == 0o775
    finally:
        os.umask(old)


def test_write_tree_atomic_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SnncError):
        write_tree_atomic(out, {"a.txt": b"x", "../escape.txt": b"y"})
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_symlinks_the_user_put_in_out_stay_links(tmp_path):
    out = tmp_path / "out"
    assert run(MODEL, "-o", str(out), "--calib", CALIB)[0] == 0
    (out / "data").symlink_to(EXAMPLES)
    assert run(MODEL, "-o", str(out), "--calib", CALIB, "--norm", "max")[0] == 0
    assert (out / "data").is_symlink() and os.readlink(out / "data") == str(EXAMPLES)
    assert (EXAMPLES / "mnist_cnn.onnx").is_file()  # the link's target is untouched


@pytest.mark.parametrize("flags", [
    ["--backend", "c,place,nir", "--target", "loihi2"],
    ["--backend", "c", "--arith", "fixed", "--calibrate-bias", "--timesteps", "8"],
    ["--coding", "ttfs"],
])
def test_every_backend_writes_byte_identical_trees(tmp_path, flags):
    """Determinism (issue 19, item 6): the same input and flags give the same bytes for
    every file of OUT, whatever the backend, run after run (and in another folder)."""
    pytest.importorskip("nir") if "nir" in " ".join(flags) else None
    trees = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert run(MODEL, "-o", str(out), "--calib", CALIB, *flags)[0] == 0
        trees.append({p.relative_to(out).as_posix(): p.read_bytes()
                      for p in sorted(out.rglob("*")) if p.is_file()})
    assert trees[0].keys() == trees[1].keys()
    for k in trees[0]:
        assert trees[0][k] == trees[1][k], k


def test_existing_output_files_can_be_rewritten(tmp_path):
    """--json, --depfile and the like name files that may already exist (a build's
    second run): they are replaced, not refused."""
    from snnc.fsutil import check_writable

    f = tmp_path / "r.json"
    f.write_text("{}")
    check_writable(f, what="--json")
    d = tmp_path / "o"
    assert run(MODEL, "-o", str(d), "--calib", CALIB, "--depfile", str(tmp_path / "o.d"))[0] == 0
    assert run(MODEL, "-o", str(d), "--calib", CALIB, "--depfile", str(tmp_path / "o.d"))[0] == 0
