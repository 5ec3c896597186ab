"""Issue 21: data read in batches from shards, and eval / sweep sharded on Dask with the
same results as one process (differential: sharded vs one process, byte for byte)."""
from __future__ import annotations

import builtins
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from snnc.cli import main
from snnc.data import open_data
from snnc.driver import evaluate, sweep, sweep_settings
from snnc.ir.errors import SnncError

distributed = pytest.importorskip("distributed")

N = 300


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "out"
    assert main([str(EXAMPLES / "mnist_cnn.onnx"), "-o", str(out), "--calib",
                 str(EXAMPLES / "mnist_calib.npz"), "--timesteps", "16", "--tune", "off"]) == 0
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """The same 300 test samples as one .npz, as .npz shards of unequal sizes with an
    empty one, and as memory-mapped .npy pairs."""
    d = tmp_path_factory.mktemp("data")
    with np.load(EXAMPLES / "mnist_test.npz") as z:
        x, y = z["x"][:N], z["y"][:N]
    np.savez(d / "one.npz", x=x, y=y)
    shards = d / "shards"
    shards.mkdir()
    cuts = [0, 130, 130, 200, N]  # 130, 0 (empty), 70, 100 samples
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        np.savez(shards / f"part{i}.npz", x=x[a:b], y=y[a:b])
    pairs = d / "pairs"
    pairs.mkdir()
    for name, (a, b) in (("a", (0, 170)), ("b", (170, N))):
        np.save(pairs / f"{name}_x.npy", x[a:b])
        np.save(pairs / f"{name}_y.npy", y[a:b])
    return {"one": d / "one.npz", "shards": shards, "pairs": pairs,
            "glob": Path(str(shards / "part*.npz"))}


def _eval_json(out: Path, data: Path, tmp: Path, tag: str, *more: str) -> tuple[bytes, bytes]:
    j, dg = tmp / f"{tag}.json", tmp / f"{tag}.diag.json"
    assert main(["eval", str(out), "--data", str(data), "--timesteps", "4,16", "--json",
                 str(j), "--diagnostics", str(dg), "--no-report", "--batch", "50",
                 *more]) == 0
    return j.read_bytes(), dg.read_bytes()


def test_shards_and_pairs_read_like_one_file(compiled, data, tmp_path):
    ref = _eval_json(compiled, data["one"], tmp_path, "one")
    for kind in ("shards", "pairs", "glob"):
        assert _eval_json(compiled, data[kind], tmp_path, kind) == ref, kind


def test_batches_span_shards_and_skip_empty_ones(data):
    one = open_data(data["one"], (1, 28, 28), need_labels=True, classes=10)
    many = open_data(data["shards"], (1, 28, 28), need_labels=True, classes=10)
    assert len(many) == N and len(many.shards) == 4 and many.shards[1].rows == 0
    got = list(many.batches(64))
    assert [off for off, _, _ in got] == list(range(0, N, 64))
    for off, xb, yb in got:  # batch 128..191 spans part0 and part2
        x1, y1 = one.read(off, off + len(xb))
        np.testing.assert_array_equal(xb, x1)
        np.testing.assert_array_equal(yb, y1)
    assert "part0.npz" in many.where(128, 192) and "part2.npz" in many.where(128, 192)


def test_shard_errors_name_the_file(data, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    x = np.zeros((5, 1, 28, 28), np.float32)
    np.savez(bad / "a.npz", x=x, y=np.zeros(5, np.int64))
    np.savez(bad / "b.npz", x=x)  # no labels
    with pytest.raises(SnncError, match=r"b\.npz' has no labels"):
        open_data(bad, (1, 28, 28), need_labels=True, classes=10)
    assert len(open_data(bad, (1, 28, 28), need_labels=False)) == 10  # inputs only
    os.remove(bad / "b.npz")
    np.savez(bad / "c.npz", x=np.zeros((5, 1, 27, 28), np.float32), y=np.zeros(5))
    with pytest.raises(SnncError, match=r"c\.npz': x has shape \[5, 1, 27, 28\]"):
        open_data(bad, (1, 28, 28), need_labels=True, classes=10)
    os.remove(bad / "c.npz")
    xn = x.copy()
    xn[3, 0, 1, 1] = np.nan
    np.savez(bad / "d.npz", x=xn, y=np.zeros(5, np.int64))
    d = open_data(bad, (1, 28, 28), need_labels=True, classes=10)
    d.read(0, 5)  # a.npz is clean
    with pytest.raises(SnncError, match=r"d\.npz' rows 0-4: x contains NaN"):
        d.read(0, 10)
    np.savez(bad / "d.npz", x=x, y=np.full(5, 12))
    with pytest.raises(SnncError, match=r"labels range over \[12, 12\].*10 classes"):
        open_data(bad, (1, 28, 28), need_labels=True, classes=10).read(5, 10)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SnncError, match="holds no .npz shards"):
        open_data(empty, (1, 28, 28), need_labels=True)
    np.savez(empty / "z.npz", x=np.zeros((0, 1, 28, 28), np.float32), y=np.zeros(0))
    with pytest.raises(SnncError, match="holds no samples"):
        open_data(empty, (1, 28, 28), need_labels=True)
    with pytest.raises(SnncError, match="matches no .npz shards"):
        open_data(str(tmp_path / "nothing*.npz"), (1, 28, 28), need_labels=True)


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of two worker processes (with nannies: a killed worker restarts)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as lc, distributed.Client(lc) as c:
        yield lc, c


def test_eval_workers_identical_to_one_process(compiled, data, tmp_path):
    ref = _eval_json(compiled, data["one"], tmp_path, "one")
    assert _eval_json(compiled, data["shards"], tmp_path, "w2", "--workers", "2") == ref


def test_sweep_on_a_cluster_equals_one_process(data, cluster):
    model = EXAMPLES / "mnist_cnn.onnx"
    settings = sweep_settings("channel:99.9", "no", v_inits="0,0.5",
                              calibrate_bias="no,yes", steps=[4, 8])
    args = (model, EXAMPLES / "mnist_calib.npz", data["shards"], [4, 8], settings)
    one = sweep(*args, batch=50)
    many = sweep(*args, batch=50, scheduler=cluster[0].scheduler_address)
    assert json.dumps(one) == json.dumps(many)
    assert one["samples"] == N and len(one["settings"]) == 4


def test_killed_worker_does_not_change_the_result(compiled, data, cluster):
    lc, client = cluster
    ref = evaluate(compiled, data["one"], [4, 16], batch=25)
    pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def progress(description, total):
        import contextlib

        @contextlib.contextmanager
        def bar():
            def update(n):
                if not killed:  # the first shard is back: kill a worker mid-run
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
            yield update
        return bar()

    got = evaluate(compiled, data["shards"], [4, 16], batch=25, progress=progress,
                   scheduler=lc.scheduler_address)
    assert killed
    for key in ("ann_accuracy", "snn", "accuracy_per_step", "layer_spikes_per_sample",
                "diagnostics"):
        assert json.dumps(got[key]) == json.dumps(ref[key]), key


def test_failing_shard_names_it(compiled, data, tmp_path, cluster):
    bad = tmp_path / "nan"
    bad.mkdir()
    with np.load(data["one"]) as z:
        x, y = z["x"][:120].copy(), z["y"][:120]
    np.savez(bad / "a.npz", x=x[:60], y=y[:60])
    x[100, 0, 3, 3] = np.inf
    np.savez(bad / "b.npz", x=x[60:], y=y[60:])
    with pytest.raises(SnncError, match=r"shard \d+/\d+ \(samples 100-119 .*b\.npz.*"
                                        r"failed: .*b\.npz' rows 40-59: x contains NaN"):
        evaluate(compiled, bad, [4], batch=20, scheduler=cluster[0].scheduler_address)


def test_without_dask_the_flags_name_the_extra(compiled, data, monkeypatch, capsys):
    real = builtins.__import__

    def no_dask(name, *a, **kw):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    assert main(["eval", str(compiled), "--data", str(data["one"]), "--timesteps", "4",
                 "--workers", "2", "--no-report"]) == 2
    assert "pip install 'snnc[distributed]'" in capsys.readouterr().err
    assert main(["eval", str(compiled), "--data", str(data["one"]), "--workers", "0"]) == 2
    assert main(["eval", str(compiled), "--data", str(data["one"]), "--workers", "2",
                 "--scheduler", "tcp://x:1"]) == 2
