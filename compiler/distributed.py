"""Evaluation and sweeps on a Dask cluster (`snnc eval|sweep --workers N | --scheduler
ADDRESS`): snnc's work split into pure tasks over shards of the data, run by Dask
distributed (a LocalCluster of worker processes on this machine, or any cluster a
scheduler address names: SSH, SLURM through dask-jobqueue, Kubernetes), never a
scheduler of snnc's own.

Decision: a task is one contiguous run of whole batches (the batches one process would
cut: data.Data.batches) and returns counts, not samples; the reduction is exact (integer
counts; float statistics kept as per-batch terms and added with math.fsum), so a sharded
run gives the numbers of one process for the same batch size, in any completion order.
Decision: what every task needs (the compiled network, the source model, the data set
description) is scattered to the workers once (`Cluster.share`, broadcast) and named by
the tasks, not pickled into each; a worker builds its simulator for a network once and
keeps it (driver._worker_cache). Workers run one thread each and cut batches into the
tiles the calling process would (runtime.Network(tiles=...)).
Decision: tasks are retried (a killed worker's tasks run again elsewhere: they are pure);
an error a task raises ends the run with an SnncError naming the shard (its samples and
files) and the cause. Ctrl-C, or any error, closes the cluster snnc started: no worker
process outlives the command.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from snnc.backends.sim import Simulator, cpus
from snnc.ir.errors import SnncError

#: how often a task is retried when its worker dies
RETRIES = 3
#: tasks per worker (at least), so that a slow or lost worker holds back little
TASKS_PER_WORKER = 4


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise SnncError("--workers and --scheduler need Dask distributed, an optional "
                        "extra", hint="pip install 'snnc[distributed]'") from None
    return distributed


@dataclass
class Job:
    """One task: fn(*args, **kwargs) on a worker; label and samples name it for errors
    and the progress bar."""

    label: str
    samples: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class Cluster:
    """A Dask client on a cluster snnc starts (LocalCluster with `workers` processes) or
    joins (`scheduler` address). Use as a context manager: leaving it closes what snnc
    started, also on Ctrl-C."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 log: Callable[[str], None] | None = None):
        if (workers is None) == (scheduler is None):
            raise SnncError("give either --workers N or --scheduler ADDRESS")
        if workers is not None and workers < 1:
            raise SnncError(f"--workers must be >= 1, got {workers}")
        self.workers, self.scheduler = workers, scheduler
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.client: Any = None
        self._cluster: Any = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Cluster:
        distributed = _dask()
        import logging

        try:
            if self.scheduler is not None:
                self.client = self._stack.enter_context(
                    distributed.Client(self.scheduler, timeout="30s"))
            else:
                self._cluster = self._stack.enter_context(distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    dashboard_address=":0", silence_logs=logging.ERROR))
                self.client = self._stack.enter_context(distributed.Client(self._cluster))
        except SnncError:
            self._stack.close()
            raise
        except Exception as e:  # an address nobody answers at, a port in use
            self._stack.close()
            where = self.scheduler or f"a local cluster of {self.workers} workers"
            raise SnncError(f"cannot start or reach the Dask cluster ({where}): "
                            f"{type(e).__name__}: {str(e)[:300]}") from None
        link = getattr(self.client, "dashboard_link", None)
        self.log(f"snnc: Dask cluster with {self.n_workers} workers"
                 + (f"; dashboard: {link}" if link else ""))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    @property
    def address(self) -> str:
        """The scheduler's address (another client, e.g. `--scheduler`, can join)."""
        return self.client.scheduler.address

    @property
    def n_workers(self) -> int:
        info = self.client.scheduler_info()
        return max(1, len(info.get("workers", {})))

    def share(self, obj: Any) -> Any:
        """obj on every worker, once: a future the tasks take in its place."""
        return self.client.scatter(obj, broadcast=True, hash=False)

    def run(self, fn: Callable[..., Any], jobs: list[Job],
            progress: Callable[[str, int], Any] | None = None,
            description: str = "simulating") -> list[Any]:
        """fn over the jobs on the cluster; the results in job order. progress: a
        progress factory (driver.Progress): one bar over every job's samples."""
        import uuid

        distributed = _dask()
        run = uuid.uuid4().hex[:16]  # keys unique to this run: Dask reuses a known key
        futures = [self.client.submit(fn, *j.args, **j.kwargs, retries=RETRIES, pure=False,
                                      key=f"snnc-{description.replace(' ', '-')}-{run}-{i}")
                   for i, j in enumerate(jobs)]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(jobs)
        bar = (contextlib.nullcontext(None) if progress is None else
               progress(description, sum(j.samples for j in jobs)))
        try:
            with bar as update:
                for fut in distributed.as_completed(futures):
                    i = index[fut.key]
                    try:
                        results[i] = fut.result()
                    except SnncError as e:
                        raise SnncError(f"shard {i + 1}/{len(jobs)} ({jobs[i].label}) "
                                        f"failed: {e}") from None
                    except Exception as e:  # retries used up, or an error in the task
                        raise SnncError(f"shard {i + 1}/{len(jobs)} ({jobs[i].label}) "
                                        f"failed: {type(e).__name__}: {str(e)[:300]}"
                                        ) from None
                    if update is not None:
                        update(jobs[i].samples)
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()
        return results


def shards(n_batches: int, workers: int) -> list[tuple[int, int]]:
    """Batch ranges [lo, hi) of nearly equal length: TASKS_PER_WORKER per worker, or one
    batch each when there are fewer batches."""
    k = max(1, min(n_batches, workers * TASKS_PER_WORKER))
    edges = [n_batches * i // k for i in range(k + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


@contextlib.contextmanager
def maybe_cluster(workers: int | None, scheduler: str | None) -> Iterator[Cluster | None]:
    """A Cluster when --workers or --scheduler is given, else None (one process)."""
    if workers is None and scheduler is None:
        yield None
        return
    with Cluster(workers, scheduler) as c:
        yield c


def batch_ranges(n: int, batch: int, workers: int) -> list[tuple[int, int]]:
    """Sample ranges [lo, hi) of whole batches (shards of n samples)."""
    return [(a * batch, min(n, b * batch)) for a, b in shards(-(-n // batch), workers)]


def _ort_rows(model: Any, x: Any, lo: int, hi: int, names: list[str], batch: int) -> Any:
    from snnc.calibration import ort_outputs

    return ort_outputs(model, x[lo:hi], names, batch, threads=1)


def calibration_runner(cluster: Cluster, x: Any) -> Callable[..., Any]:
    """An OnnxCalibration runner: onnxruntime over shards of the calibration inputs x on
    the cluster (x shared once), the activations concatenated in order (each batch's
    are what this process would compute)."""
    import numpy as np

    xf = cluster.share(x)

    def run(model: Any, names: list[str], batch: int) -> dict[str, Any]:
        mf = cluster.share(model)
        ranges = batch_ranges(len(x), batch, cluster.n_workers)
        jobs = [Job(f"calibration samples {lo}-{hi - 1}", hi - lo,
                    (mf, xf, lo, hi, names, batch)) for lo, hi in ranges]
        parts = cluster.run(_ort_rows, jobs, None, "calibration")
        return {n: np.concatenate([p[n] for p in parts]) for n in names}

    return run


def _count_rows(graph: Any, x: Any, lo: int, hi: int, steps: list[int], ops: list[str],
                batch: int, tiles: int) -> Any:
    return Simulator(batch=batch, threads=1, tiles=tiles).spike_counts_at(
        graph, x[lo:hi], steps, ops, first=lo)


class ClusterSimulator(Simulator):
    """The pass-context simulator (backends.sim.Simulator) whose spike counts, bias
    calibration's simulations, run as shards of the samples on a cluster: the counts of
    each batch are those this process would compute (same tiles, global sample
    indices), concatenated in order."""

    def __init__(self, cluster: Cluster, batch: int = 100):
        super().__init__(batch=batch, threads=cpus())
        self.cluster = cluster
        self._shared: tuple[Any, Any] | None = None  # (key of x, its future)

    def spike_counts_at(self, graph: Any, x: Any, steps: list[int], ops: list[str],
                        progress: Callable[[int], None] | None = None, first: int = 0
                        ) -> dict[int, dict[str, Any]]:
        import numpy as np

        key = (x.__array_interface__["data"][0], x.shape, first)
        if self._shared is None or self._shared[0] != key:
            self._shared = (key, self.cluster.share(x))
        gf = self.cluster.share(graph)
        ranges = batch_ranges(len(x), self.batch, self.cluster.n_workers)
        jobs = [Job(f"calibration samples {first + lo}-{first + hi - 1}", hi - lo,
                    (gf, self._shared[1], lo, hi, steps, ops, self.batch, self.threads))
                for lo, hi in ranges]
        parts = self.cluster.run(_count_rows, jobs, None, "bias calibration")
        if progress is not None:
            progress(len(x))
        return {t: {name: np.concatenate([p[t][name] for p in parts]) for name in ops}
                for t in sorted(set(steps))}
