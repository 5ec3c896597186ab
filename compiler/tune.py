"""`--tune auto`: choose the conversion recipe on held-out calibration data.

Which recipe converts a network best at a short T depends on the network (plain CNNs
like channel-wise norms and bias calibration, residual nets an initial potential, Clip
nets their clip bounds): a user should not need to know the recipe zoo. The tuner:

1. splits the calibration inputs, deterministically (a permutation seeded with
   Options.seed), into a fitting part (normalization, bias calibration) and a held-out
   part (scoring); test data is never seen;
2. converts the network with every recipe of stage 1 (normalization method -- NORMS, and
   mse:T / channel-mse:T, the scales with the least rate-code error at the shortest
   target T -- x the charge-shifting options: none, v_init 0.5, shift bias at one T --
   x signed neurons or not, when the network stays in the simulator) -- cheap, the
   calibration activations are computed once and shared;
3. adds bias calibration (fitted over every target T: passes/calibrate_bias.py) to
   the best stage-1 recipes and the best of each family (stage2_picks; stage 2, the
   expensive part: one bias calibration each);
4. keeps the recipe whose SNN agrees best with the ANN's predictions on the held-out
   inputs, averaged over the target T values (so a recipe that decays past its T loses),
   and ships it refitted on all the calibration inputs.

Decision: the score is agreement with the ANN's top-1 prediction (no labels needed; the
ANN is what the conversion approximates), averaged over the target T values; ties (common:
good recipes agree on every held-out input) are broken by the mean log-probability that
the SNN's readout at T (its accumulated output / T, through a softmax) gives the ANN's
class; the earlier, simpler recipe wins an exact tie.
Decision: held out: a third of the calibration inputs, at least 1, at most 2,000; with
fewer than 20 inputs nothing is held out and the recipes are scored on the fitting data
(the report says so).
Decision: the shipped network is the chosen recipe fitted on every calibration input
(one more conversion): the held-out part chooses the recipe without bias, and the
thresholds and bias corrections then use all the data the user gave.
Decision: options the user gave (norm, v_init, shift bias, bias calibration) stay fixed;
only the others are searched. Finite input time, reset, readout and input coding are
never searched.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from snnc.calibration import OnnxCalibration
from snnc.driver import Options, ann_predictions, convert, setting_name
from snnc.frontend import import_model
from snnc.ir.errors import SnncError
from snnc.passes.base import Progress

#: stage 1's normalization methods (a layer with a Clip bound uses it whatever the method)
NORMS = ("percentile:99.9", "percentile:99.99", "max", "channel:99.9", "channel:99.99")
#: how many stage-1 recipes get bias calibration in stage 2
STAGE2 = 2
#: the held-out part: this fraction of the calibration inputs, within these bounds
HELD_FRACTION, HELD_MAX, MIN_SPLIT = 1 / 3, 2000, 20
#: the recipe fields the tuner searches
TUNED = ("norm", "v_init", "shift_bias", "calibrate_bias", "signed")


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fitting indices, held-out indices), sorted, for n calibration inputs."""
    if n < MIN_SPLIT:
        every = np.arange(n)
        return every, every
    held = max(1, min(int(n * HELD_FRACTION), HELD_MAX))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[held:]), np.sort(perm[:held])


def norms_for(opts: Options) -> list[str]:
    """Stage 1's normalizations: NORMS and the least-error scales for the shortest
    target T (mse:T per layer and per channel; T1 with finite input time)."""
    fit = opts.fit_steps()
    t0 = fit[0] if fit is not None else min(opts.target_steps())
    t0 = min(t0, 1 << 20)  # mse:T's largest T (beyond it, the code's step is negligible)
    return [*NORMS, f"mse:{t0}", f"channel-mse:{t0}"]


def fixed_fields(opts: Options) -> set[str]:
    """The recipe fields the user set (away from their defaults): not searched."""
    return {f for f in TUNED if not opts.is_default(f)}


def candidates(opts: Options) -> tuple[list[Options], bool]:
    """Stage-1 recipes for opts (fixed fields kept) and whether stage 2 (bias
    calibration) is searched."""
    fixed = fixed_fields(opts)
    several = len(opts.target_steps()) > 1
    norms = [opts.norm] if "norm" in fixed else norms_for(opts)
    shifts: list[tuple[float, bool]] = []
    if "v_init" in fixed or "shift_bias" in fixed:
        shifts = [(opts.v_init, opts.shift_bias)]
    else:
        shifts = [(0.0, False), (0.5, False)]
        if not several and opts.fit is None:  # shift bias is right at one T only
            shifts.append((0.0, True))
    base = dataclasses.replace(opts, tune="off")
    cal = opts.calibrate_bias if "calibrate_bias" in fixed else False
    signs = [opts.signed] if "signed" in fixed or not signed_applies(opts) else [False, True]
    out = [dataclasses.replace(base, norm=n, v_init=v, shift_bias=sb, calibrate_bias=cal,
                               signed=sg)
           for sg in signs for n in norms for v, sb in shifts]
    return out, "calibrate_bias" not in fixed


def signed_applies(opts: Options) -> bool:
    """Whether signed neurons may be tried: the network stays in the simulator (no C,
    placement or NIR backend, float), resets by subtraction, without finite input."""
    return (opts.arith == "float" and opts.reset == "subtract" and opts.fit is None
            and not any(b in ("c", "place", "nir") for b in opts.backends))


def score(graph: Any, x: np.ndarray, ann_pred: np.ndarray, steps: list[int],
          batch: int = 100) -> dict[str, Any]:
    """How well the SNN agrees with the ANN on inputs x at every T of steps: the fraction
    of inputs whose prediction is the ANN's, and the mean log-probability the SNN's
    readout (per step, a softmax over the outputs) gives the ANN's class (continuous:
    it ranks recipes that agree on every held-out input)."""
    from snnc.backends.sim import accelerated, cpus, network, runtime
    from snnc.budget import check_simulation

    check_simulation(graph, min(batch, len(x)), max(steps))
    net = network(graph, accelerated(), cpus())
    tmax = max(steps)
    agree = {t: 0 for t in steps}
    logp = {t: 0.0 for t in steps}
    for off, xb, _ in runtime.batches(x, None, batch):
        out = net.simulate(xb, tmax, sample_offset=off)["output"]
        out = np.asarray(out, np.float64).reshape(tmax, len(xb), -1)
        want = ann_pred[off:off + len(xb)]
        for t in steps:
            o = out[t - 1] / t
            agree[t] += int((o.argmax(axis=1) == want).sum())
            o = o - o.max(axis=1, keepdims=True)
            lp = o[np.arange(len(xb)), want] - np.log(np.exp(o).sum(axis=1))
            logp[t] += float(lp.sum())
    n = len(x)
    at = {t: agree[t] / n for t in steps}
    lp = {t: logp[t] / n for t in steps}
    return {"agreement": at, "log_prob": lp,
            "key": (float(np.mean(list(at.values()))), float(np.mean(list(lp.values()))))}


def stage2_picks(tried: list[tuple[Options, dict[str, Any]]]) -> list[int]:
    """Which stage-1 recipes get bias calibration: the STAGE2 best, and the best of each
    charge option (none, v_init, shift bias), of each norm kind (one threshold per
    layer, per channel) and with and without signed neurons not among them, best first.
    Decision: bias calibration reorders recipes (it removes the mean error that sinks a
    recipe in stage 1: a per-channel norm with a residual join's over-firing, say), so
    the best stage-1 recipes alone miss the best calibrated one; the best of every
    family is calibrated too, at one bias calibration each."""
    ranked = sorted(range(len(tried)), key=lambda i: (tried[i][1]["key"], -i), reverse=True)
    picks = ranked[:STAGE2]

    def family(o: Options) -> tuple[Any, ...]:
        return (o.v_init, o.shift_bias), o.norm.startswith("channel"), o.signed

    for fam in (lambda o: family(o)[0], lambda o: family(o)[1], lambda o: family(o)[2]):
        seen = {fam(tried[i][0]) for i in picks}
        for i in ranked:
            if fam(tried[i][0]) not in seen:
                seen.add(fam(tried[i][0]))
                picks.append(i)
    return sorted(picks, key=ranked.index)


@dataclass
class Tuned:
    """The chosen recipe, its conversion (on the fitting part), and the report entry."""

    options: Options
    converted: tuple[Any, Any, Any]  # convert()'s (imported, graph, ctx)
    report: dict[str, Any]
    seconds: float
    fit_idx: np.ndarray  # the calibration inputs the network was fitted on


def tune(model: onnx.ModelProto, calib_x: np.ndarray, opts: Options,
         progress: Progress | None = None) -> Tuned:
    """Choose the recipe for opts (tune="auto") on held-out calibration data."""
    if opts.coding != "rate" or opts.pipeline is not None:
        raise SnncError("--tune auto chooses rate-coding recipes; it does not apply to "
                        "--coding ttfs or an explicit --pipeline", hint="use --tune off")
    if calib_x is None or len(calib_x) == 0:
        raise SnncError("--tune auto needs calibration data to score recipes on",
                        hint="pass --calib CALIB.npz, or --tune off")
    t0 = time.perf_counter()
    imported = import_model(model)  # imported once, converted by every candidate
    memo: dict[tuple[str, ...], Any] = {}  # candidates share pipeline prefixes
    model = imported.model  # what convert() calibrates on
    steps = opts.target_steps() if opts.fit is None else [opts.total_timesteps()]
    fit_idx, held_idx = split(len(calib_x), opts.seed)
    x_fit, x_held = calib_x[fit_idx], calib_x[held_idx]
    ann_pred = ann_predictions(model, x_held)
    calibration = OnnxCalibration(model, x_fit)
    tried: list[tuple[Options, dict[str, Any]]] = []
    best: list[Any] = [None, None]  # (index into tried, conversion): only the best is kept

    def run(o: Options) -> None:
        conv = convert(model, o, calibration=calibration, progress=progress,
                       imported=imported, memo=memo)
        sc = score(conv[1], x_held, ann_pred, steps)
        tried.append((o, sc))
        if best[0] is None or sc["key"] > tried[best[0]][1]["key"]:  # ties: earlier stays
            best[:] = [len(tried) - 1, conv]

    stage1, stage2 = candidates(opts)
    for o in stage1:
        run(o)
    if stage2:
        for i in stage2_picks(tried):
            run(dataclasses.replace(tried[i][0], calibrate_bias=True))
    chosen, conv = tried[best[0]][0], best[1]
    refit = len(held_idx) < len(calib_x)  # something was held out: fit on everything
    scored_on = len(fit_idx)
    if refit:
        conv = convert(model, chosen, calibration=OnnxCalibration(model, calib_x),
                       progress=progress, imported=imported)
        fit_idx = np.arange(len(calib_x))
    report = {
        "chosen": setting_name(chosen),
        "options": {k: getattr(chosen, k) for k in TUNED},
        "fixed_by_user": sorted(fixed_fields(opts)),
        "timesteps": steps,
        "fit_samples": int(scored_on),  # the candidates' fitting part
        "shipped_fit_samples": int(len(fit_idx)),  # the chosen one, refitted on all
        "held_out_samples": int(len(held_idx)),
        "held_out": bool(len(calib_x) >= MIN_SPLIT),
        "seed": opts.seed,
        "score": "agreement with the ANN's prediction on the held-out inputs",
        "candidates": [{"setting": setting_name(o),
                        "agreement": {str(t): a for t, a in sc["agreement"].items()},
                        "log_prob": {str(t): round(v, 6) for t, v in sc["log_prob"].items()},
                        "mean_agreement": sc["key"][0]} for o, sc in tried],
    }
    # the shipped options: the chosen recipe, marked as tuned
    final = dataclasses.replace(chosen, tune="auto")
    return Tuned(final, conv, report, time.perf_counter() - t0, fit_idx)
