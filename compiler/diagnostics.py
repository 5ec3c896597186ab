"""Why a converted network loses accuracy: per-layer conversion diagnostics (METHODS 8).

One simulation gives, per spiking layer l (an IF population, or the spiking softmax):
  * firing rate r_l = N_l(T) / T_in, where T_in = T, or T1 with finite input time ("read
    out over T1"; METHODS 6);
  * saturated: fraction of (sample, neuron) pairs that fire on >= 99% of the steps;
  * dead: fraction of neurons that never fire on any sample (and, of those, how many the
    ANN view says should have fired);
  * correlation (Pearson) of r_l(T) with rhat_l, the rate the SNN approximates: the
    spiking graph's ANN view (Network.run_rates), i.e. the normalized ANN activation
    a_l / lambda_l (without the shift-bias current, which only corrects quantization;
    clipped at 1 where the ANN layer is itself a Clip at the threshold);
  * Ding's K curve K_l(t) = sum ||r_l(t) - rhat_l||^2 / sum ||rhat_l||^2 at checkpoints t,
    and the rate inference loss Omega_l = sum ||rhat_l||_1 / sum ||rhat_l||_2^2 (sums over
    the samples), with the bound K_l(t) < 2 Omega_l / t;
  * where the remaining error comes from (mean squared rate error at T, split in three):
    quantization -- what an IF neuron makes even when its input is exactly the ANN's
    (floor(rhat T + v0) / T against rhat, v0 = v_init plus the shift-bias charge; the
    part only more steps remove); over-firing -- spikes where the ANN says 0 (transients
    and residual joins: positive input first, cancelled later, the spikes cannot be
    taken back); inherited -- the rest (the layer's input differs from the ANN's:
    errors of the layers before it, a spiking max-pool's gate); and whether the layer
    sits after a residual Add or a max-pool;
  * a plain-language verdict when the layer is a likely source of loss.
Network totals: accuracy at every t, SynOps and spikes per sample vs the ANN's MACs, and
an energy estimate from a *named* cost table (every number an estimate).

Decision: the per-layer statistics pool all (sample, neuron) pairs of the evaluation set,
with sums accumulated batch by batch (never the whole data set in memory).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from snnc.ir.errors import SnncError

#: Energy cost tables. Every energy snnc prints names the table it used.
COST_TABLES: dict[str, dict[str, Any]] = {
    "horowitz45nm": {
        "synop_pJ": 0.9,           # 32-bit float add: one SynOp = one accumulate
        "neuron_update_pJ": 0.9,   # one membrane add per neuron per step
        "mac_pJ": 4.6,             # 32-bit float multiply (3.7) + add (0.9)
        "source": "Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm, 32-bit "
                  "float): add 0.9 pJ, multiply 3.7 pJ",
    },
    "horowitz45nm-int8": {
        "synop_pJ": 0.03,          # 8-bit integer add
        "neuron_update_pJ": 0.1,   # 32-bit integer add (membrane)
        "mac_pJ": 0.23,            # 8-bit multiply (0.2) + 8-bit add (0.03)
        "source": "Horowitz, ISSCC 2014 (45 nm): 8-bit add 0.03 pJ, 8-bit multiply 0.2 pJ, "
                  "32-bit integer add 0.1 pJ",
    },
}
SATURATED = 0.99  # a neuron firing on at least this fraction of steps is saturated


def cost_table(spec: str) -> dict[str, Any]:
    """A named table, or a JSON file {"synop_pJ", "neuron_update_pJ", "mac_pJ", "source"}."""
    if spec in COST_TABLES:
        return {"name": spec, **COST_TABLES[spec]}
    path = Path(spec)
    if not path.is_file():
        raise SnncError(f"unknown cost table '{spec}'",
                        hint=f"use {' or '.join(COST_TABLES)}, or a JSON file with keys "
                             "synop_pJ, neuron_update_pJ, mac_pJ, source")
    try:
        table = json.loads(path.read_text())
        out = {"name": path.name, "source": str(table.get("source", path.name))}
        for k in ("synop_pJ", "neuron_update_pJ", "mac_pJ"):
            out[k] = float(table[k])
            if not math.isfinite(out[k]) or out[k] < 0:
                raise ValueError(k)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SnncError(f"cost table '{spec}' is not valid ({e})",
                        hint="a JSON object with non-negative numbers synop_pJ, "
                             "neuron_update_pJ, mac_pJ and a 'source' string") from None
    return out


def checkpoints(tmax: int, timesteps: list[int]) -> list[int]:
    """Where the K curve is sampled: powers of two and the requested step counts."""
    pts = {t for t in timesteps if t <= tmax}
    t = 1
    while t <= tmax:
        pts.add(t)
        t *= 2
    pts.add(tmax)
    return sorted(pts)


#: the float sums a layer keeps (each a list of per-batch terms, summed exactly at the end)
SUMS = ("rhat_l1", "rhat_l2", "sxy", "sx", "sy", "sxx", "syy", "e_total", "e_quant",
        "e_over")


class _Layer:
    def __init__(self, name: str, value: str, size: int, n_points: int):
        self.name, self.value, self.size = name, value, size
        self.rhat: np.ndarray | None = None  # (B, size) ANN-view rates of the batch
        self.rhat32: np.ndarray | None = None  # the same in float32 (the K curve's terms)
        # per-batch terms of float sums: ||r(t) - rhat||^2 per checkpoint, the moments of
        # r and rhat, the squared rate errors at T (total, quantization, over-firing);
        # math.fsum adds them exactly, so shards merged in any order give one result
        self.err: list[list[float]] = [[] for _ in range(n_points)]
        self.terms: dict[str, list[float]] = {k: [] for k in SUMS}
        self.n_pairs = 0
        self.saturated = 0
        self.ann_above = 0  # pairs whose ANN-view rate exceeds 1 (more than one spike/step)
        self.fired = np.zeros(size, np.float64)  # total spikes per neuron
        self.ann_active = np.zeros(size, bool)  # the ANN view is positive on some sample
        self.v0 = 0.0  # initial charge in thresholds (v_init), for the quantization part
        self.shift = 0.0  # shift-bias current per step, in thresholds
        self.after: list[str] = []  # "residual add", "max-pool" between it and the last layer

    def add(self, key: str, value: float) -> None:
        self.terms[key].append(value)

    def total(self, key: str) -> float:
        return math.fsum(self.terms[key])

    def merge(self, other: _Layer) -> None:
        for k in SUMS:
            self.terms[k].extend(other.terms[k])
        for mine, theirs in zip(self.err, other.err):
            mine.extend(theirs)
        self.n_pairs += other.n_pairs
        self.saturated += other.saturated
        self.ann_above += other.ann_above
        self.fired += other.fired  # integer-valued: exact
        self.ann_active |= other.ann_active


class Diagnostics:
    """An evaluation observer (runtime.evaluate(observer=...)) that gathers the per-layer
    statistics above from the spike counts the simulator reports at its checkpoints
    (`marks`), then `result()` turns them into the diagnostics record. It never sees the
    spike trains themselves, so it costs a few passes over (batch, neurons) per
    checkpoint, not per step."""

    def __init__(self, graph_dict: dict[str, Any], tmax: int, timesteps: list[int]):
        self.tmax = tmax
        self.points = checkpoints(tmax, timesteps)
        self.marks = list(self.points)
        self.t_in = int(graph_dict.get("meta", {}).get("input_steps", 0) or 0)
        shapes = graph_dict["shapes"]
        self.layers = {op["name"]: _Layer(op["name"], op["out"],
                                          math.prod(shapes[op["out"]]), len(self.points))
                       for op in graph_dict["ops"] if op["kind"] in ("if", "spikesoftmax")}
        ops = graph_dict["ops"]
        prod = {op["out"]: op for op in ops}
        for op in ops:
            lay = self.layers.get(op["name"])
            if lay is None or op["kind"] != "if":
                continue
            attrs = op.get("attrs", {})
            lay.v0 = float(attrs.get("v_init", 0.0) or 0.0)
            lay.shift = float(attrs.get("shift", 0.0) or 0.0)
            lay.after = _upstream_kinds(op, prod)

    def _steps_in(self, t: int) -> int:
        return min(t, self.t_in) if self.t_in else t

    def begin(self, net: Any, offset: int, xb: np.ndarray) -> None:
        rates = net.run_rates(xb, [lay.value for lay in self.layers.values()])
        for lay in self.layers.values():
            r = rates[lay.value].reshape(len(xb), -1).astype(np.float64)
            lay.rhat = r
            lay.rhat32 = r.astype(np.float32)
            lay.add("rhat_l1", float(np.abs(r).sum()))
            lay.add("rhat_l2", float((r * r).sum()))
            lay.ann_above += int((r > 1.0).sum())
            lay.ann_active |= (r > 0).any(axis=0)

    def observe(self, t: int, counts: dict[str, np.ndarray]) -> None:
        """Spike counts per neuron (B, ...) of every spike source after step t."""
        if t not in self.points:
            return
        k = self.points.index(t)
        for lay in self.layers.values():
            if lay.rhat is None or lay.name not in counts:
                continue
            c = counts[lay.name].reshape(len(lay.rhat), -1)
            d = np.multiply(c, np.float32(1.0 / self._steps_in(t)), dtype=np.float32)
            d -= lay.rhat32
            flat = d.reshape(-1)
            lay.err[k].append(float(np.dot(flat, flat)))
            if t == self.tmax:
                self._finish_batch(lay, c.astype(np.float64))

    def _finish_batch(self, lay: _Layer, count: np.ndarray) -> None:
        t_in = self._steps_in(self.tmax)
        r = count / t_in
        a = lay.rhat
        # the error budget at T: all, quantization of the exact input, over-firing
        q = np.clip(np.floor(np.maximum(a, 0.0) * t_in + lay.shift * t_in + lay.v0),
                    0, t_in) / t_in
        lay.add("e_total", float(((r - a) ** 2).sum()))
        lay.add("e_quant", float(((q - a) ** 2).sum()))
        lay.add("e_over", float((r[a <= 0] ** 2).sum()))
        lay.add("sx", float(r.sum()))
        lay.add("sy", float(a.sum()))
        lay.add("sxx", float((r * r).sum()))
        lay.add("syy", float((a * a).sum()))
        lay.add("sxy", float((r * a).sum()))
        lay.n_pairs += r.size
        lay.saturated += int((count >= SATURATED * self.tmax).sum())
        lay.fired += count.sum(axis=0)
        lay.rhat = lay.rhat32 = None

    def merge(self, other: Diagnostics) -> Diagnostics:
        """Add the statistics another observer gathered on other samples (a shard of the
        same evaluation); exact and independent of order."""
        for name, lay in self.layers.items():
            lay.merge(other.layers[name])
        return self

    def result(self) -> list[dict[str, Any]]:
        rows = []
        for lay in self.layers.values():
            n = max(1, lay.n_pairs)
            sx, sy, sxx, syy, sxy = (lay.total(k) for k in ("sx", "sy", "sxx", "syy", "sxy"))
            l1, l2 = lay.total("rhat_l1"), lay.total("rhat_l2")
            cov = sxy / n - (sx / n) * (sy / n)
            vx = sxx / n - (sx / n) ** 2
            vy = syy / n - (sy / n) ** 2
            corr = cov / math.sqrt(vx * vy) if vx > 1e-15 and vy > 1e-15 else None
            dead = lay.fired == 0
            omega = l1 / l2 if l2 > 0 else None
            tot = lay.total("e_total")
            quant = min(lay.total("e_quant"), tot)
            over = min(lay.total("e_over"), tot - quant)
            rows.append({
                "layer": lay.name,
                "neurons": lay.size,
                "firing_rate": sx / n,
                "ann_rate": sy / n,
                "saturated_fraction": lay.saturated / n,
                "ann_above_threshold_fraction": lay.ann_above / n,
                "dead_fraction": float(dead.mean()) if lay.size else 0.0,
                "dead_but_ann_active_fraction":
                    float((dead & lay.ann_active).mean()) if lay.size else 0.0,
                "correlation": corr,
                "rate_inference_loss": omega,
                "rate_error": tot / n,
                "error_sources": ({"quantization": quant / tot, "over_firing": over / tot,
                                   "inherited": max(0.0, tot - quant - over) / tot}
                                  if tot > 0 else None),
                "after": lay.after,
                "k_curve": [{"t": t, "k": (math.fsum(e) / l2 if l2 > 0 else None),
                             "bound": (2 * omega / self._steps_in(t) if omega else None)}
                            for t, e in zip(self.points, lay.err)],
            })
        return rows


def _upstream_kinds(op: dict[str, Any], prod: dict[str, dict[str, Any]]) -> list[str]:
    """What lies between a neuron and the spike sources feeding it: "residual add" when
    an Add joins two paths there, "max-pool" when a spiking max-pool gates its input."""
    found: list[str] = []
    stack, seen = list(op.get("inputs", [])), set()
    while stack:
        v = stack.pop()
        src = prod.get(v)
        if src is None or v in seen:
            continue
        seen.add(v)
        kind = src["kind"]
        if kind == "add" and "residual add" not in found:
            found.append("residual add")
        if kind in ("spikemaxpool", "maxpool") and "max-pool" not in found:
            found.append("max-pool")
        if kind in ("if", "spikesoftmax", "encode"):
            continue  # a spike source: the layer before
        stack.extend(src.get("inputs", []))
    return sorted(found)


def verdicts(layers: list[dict[str, Any]], ann_accuracy: float, snn_accuracy: float,
             tmax: int) -> None:
    """Add a plain-language `verdict` to every layer row (in place)."""
    prev_corr = 1.0
    drops = []
    for row in layers:
        corr = row["correlation"]
        drops.append(prev_corr - corr if corr is not None else 0.0)
        if corr is not None:
            prev_corr = corr
    worst = int(np.argmax(drops)) if drops and max(drops) > 0.02 else -1
    lossy = snn_accuracy < ann_accuracy - 0.005
    for i, row in enumerate(layers):
        name, notes = row["layer"], []
        # saturation is a loss only where the ANN asks for more than one spike per step
        # (a Clip layer's neurons saturate exactly where the ANN clips)
        if row["ann_above_threshold_fraction"] >= 0.02:
            notes.append(f"{row['ann_above_threshold_fraction']:.0%} of neurons saturated "
                         "(the ANN asks for more than one spike per step); try a higher "
                         "percentile (e.g. percentile:99.99), channel-wise normalization "
                         "or --fit")
        if row["dead_but_ann_active_fraction"] >= 0.05:
            notes.append(f"{row['dead_but_ann_active_fraction']:.0%} of neurons never fire "
                         "although the ANN activates them (under-firing); try channel-wise "
                         "normalization, a lower percentile or more time steps")
        k_last = row["k_curve"][-1]["k"] if row["k_curve"] else None
        if k_last is not None and k_last > 0.1 and not notes:
            notes.append(f"rates have not converged at T={tmax} (K={k_last:.2f}); the "
                         "firing rates are low: try more time steps, --shift-bias, or "
                         "channel-wise normalization")
        if i == worst and lossy:
            notes.insert(0, f"likely source of loss (correlation with the ANN drops to "
                            f"{row['correlation']:.3f} here)")
        row["verdict"] = (f"{name}: " + "; ".join(notes)) if notes else "ok"


def energy(spikes: float, synops: float, neuron_updates: float, macs: float, steps: int,
           table: dict[str, Any]) -> dict[str, Any]:
    """Per-sample energy estimates from op counts and a named cost table, plus Cao's
    spike model used by Ding et al. (METHODS 8): each spike costs alpha joules and a step
    lasts 1 ms, so P = spikes_per_step * alpha / 1e-3 s."""
    snn = (synops * table["synop_pJ"] + neuron_updates * table["neuron_update_pJ"]) * 1e-12
    ann = macs * table["mac_pJ"] * 1e-12
    return {"cost_table": table["name"], "source": table["source"],
            "synop_pJ": table["synop_pJ"], "neuron_update_pJ": table["neuron_update_pJ"],
            "mac_pJ": table["mac_pJ"],
            "snn_joules_per_sample": snn, "ann_joules_per_sample": ann,
            "snn_over_ann": (snn / ann) if ann > 0 else None,
            "spikes_per_step": spikes / steps,
            "spike_model_watts_per_alpha": spikes / steps / 1e-3,
            "estimate": True}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_diagnostics(d: dict[str, Any]) -> str:
    """The text form `snnc eval` prints."""
    from snnc.report import format_table

    t = d["timesteps"]
    lines = [f"per-layer diagnostics at T={t} (rates per input step; K: Ding's "
             f"||r - rhat||^2/||rhat||^2, bound 2*Omega/T):"]
    rows = []
    for r in d["layers"]:
        last = r["k_curve"][-1] if r["k_curve"] else {"k": None, "bound": None}
        src = r.get("error_sources")
        split = ("-" if not src else "/".join(f"{100 * src[k]:.0f}" for k in (
            "quantization", "over_firing", "inherited")))
        rows.append([r["layer"], r["neurons"], _fmt(r["firing_rate"], ".3f"),
                     _fmt(r["ann_rate"], ".3f"), _fmt(r["saturated_fraction"], ".1%"),
                     _fmt(r["dead_fraction"], ".1%"), _fmt(r["correlation"], ".3f"),
                     _fmt(last["k"], ".4f"), _fmt(last["bound"], ".4f"), split,
                     ", ".join(r.get("after", [])) or "-"])
    lines.append(format_table(["layer", "neurons", "rate", "ANN rate", "saturated", "dead",
                               "corr", f"K({t})", "bound", "error % q/o/i", "after"], rows))
    lines.append("  error % q/o/i: the layer's squared rate error at T from quantization "
                 "(even an exact input errs: only more steps help), over-firing (spikes "
                 "where the ANN says 0: transients, residual joins) and inherited (its "
                 "input differs from the ANN's: earlier layers, max-pool gates)")
    for r in d["layers"]:
        if r["verdict"] != "ok":
            lines.append(f"  ! {r['verdict']}")
    e = d["energy"]
    macs = d["ann_macs_per_sample"]
    ratio = d["synops_per_sample"] / macs if macs else float("nan")
    lines.append(f"ops per sample: SynOps {d['synops_per_sample']:.0f} vs ANN MACs {macs} "
                 f"({ratio:.2f}x); spikes {d['spikes_per_sample']:.0f}")
    lines.append(f"energy estimate per sample ({e['cost_table']}: {e['source']}): SNN "
                 f"{e['snn_joules_per_sample'] * 1e9:.3f} nJ (SynOps x {e['synop_pJ']} pJ + "
                 f"neuron updates x {e['neuron_update_pJ']} pJ) vs ANN "
                 f"{e['ann_joules_per_sample'] * 1e9:.3f} nJ (MACs x {e['mac_pJ']} pJ); "
                 f"spike model (Cao/Ding, alpha J per spike, 1 ms steps): "
                 f"P = {e['spike_model_watts_per_alpha']:.4g} x alpha W")
    return "\n".join(lines)


def write_plots(d: dict[str, Any], directory: str | Path,
                evaluation: dict[str, Any] | None = None) -> list[Path]:
    """accuracy.png (accuracy after every step, with markers at the evaluated T and the
    ANN's accuracy when `evaluation` (what `snnc eval --json` writes) is given),
    k_curve.png (K per layer vs t with its bound 2*Omega/t, log-log) and rates.png (firing
    rate vs the ANN's per layer; saturated and dead fractions on their own axis). Needs
    the optional plotting extra: pip install 'snnc[plot]'."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SnncError("plots need matplotlib",
                        hint="pip install 'snnc[plot]' (or pip install matplotlib)") from None
    import io

    from snnc.fsutil import write_file_atomic

    figs = figures(plt, d, evaluation)

    meta = {"Software": "snnc"}
    pngs = {}
    try:  # every figure rendered before any file is written: nothing partial on failure
        for name, fig in figs:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, metadata=meta)
            pngs[name] = buf.getvalue()
    finally:
        for _, fig in figs:
            plt.close(fig)
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SnncError(f"cannot write plots to '{out}': {e.strerror}") from None
    written = []
    for name, data in pngs.items():
        write_file_atomic(out / name, data)
        written.append(out / name)
    return written


def figures(plt: Any, d: dict[str, Any], evaluation: dict[str, Any] | None = None
            ) -> list[tuple[str, Any]]:
    """The figures write_plots saves, as (file name, matplotlib figure)."""
    figs = []

    fig, ax = plt.subplots(figsize=(6, 4))
    acc = d["accuracy_per_step"]
    ax.plot(range(1, len(acc) + 1), [a * 100 for a in acc], color="C0", lw=1,
            label="SNN, after every step t of one run")
    if evaluation is not None:
        pts = [(r["timesteps"], r["accuracy"] * 100) for r in evaluation.get("snn", [])]
        if pts:
            ax.plot(*zip(*pts), "o", color="C0", label="SNN at each evaluated T")
        if evaluation.get("ann_accuracy") is not None:
            ax.axhline(evaluation["ann_accuracy"] * 100, color="C3", ls="--",
                       label="ANN (onnxruntime)")
    ax.set_xlabel("time step t")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy-latency curve")
    ax.grid(True, alpha=.3)
    ax.legend(fontsize=7, loc="lower right")
    figs.append(("accuracy.png", fig))

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(d["layers"]):
        pts = [(p["t"], p["k"]) for p in r["k_curve"] if p["k"]]
        if pts:
            ax.loglog(*zip(*pts), marker="o", color=f"C{i % 10}", label=r["layer"])
        bound = [(p["t"], p["bound"]) for p in r["k_curve"] if p.get("bound")]
        if bound:
            ax.loglog(*zip(*bound), ls="--", lw=1, color=f"C{i % 10}",
                      label=f"{r['layer']}: bound 2*Omega/t")
    ax.set_xlabel("t")
    ax.set_ylabel("K(t) = ||r - rhat||^2 / ||rhat||^2")
    ax.set_title("Ding's K curve per layer (dashed: its bound)")
    ax.legend(fontsize=7)
    figs.append(("k_curve.png", fig))

    names = [r["layer"] for r in d["layers"]]
    xs = np.arange(len(names))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    ax.bar(xs - .2, [r["firing_rate"] for r in d["layers"]], .4, label="SNN firing rate")
    ax.bar(xs + .2, [r["ann_rate"] for r in d["layers"]], .4, label="rate the ANN asks for")
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title("firing rates")
    ax2.bar(xs - .2, [r["saturated_fraction"] for r in d["layers"]], .4,
            label="saturated (fires every step)")
    ax2.bar(xs + .2, [r["dead_fraction"] for r in d["layers"]], .4, label="dead (never fires)")
    ax2.set_ylabel("fraction of neuron-sample pairs")
    ax2.set_title("saturated and dead neurons")
    for a in (ax, ax2):
        a.set_xticks(xs, names, rotation=30, ha="right", fontsize=7)
        a.legend(fontsize=7)
    fig.tight_layout()
    figs.append(("rates.png", fig))

    return figs
