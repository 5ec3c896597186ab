"""Issue 3's conversion-fidelity table: snnc settings vs the ANN and vs SpikingJelly.

For every trained model (tools/train_mnist.py, cached in build/models; mnist5k test split,
1000 images) it evaluates one fixed list of snnc settings -- the same list for every model,
nothing tuned per model -- at T = 8..256 with `snnc.driver.sweep` (the engine of
`snnc sweep`; shift-bias and bias-calibration settings are compiled for each T), plus
finite-input-time settings read at T1 + T2. Results go to build/bench/fidelity_MODEL.json.
`--report` assembles them with SpikingJelly 2.0's ann2snn recipes measured on the *same*
trained weights and test images (tools/bench/spikingjelly_ref.py writes
build/bench/spikingjelly.json; it takes hours, so it is run separately), checks the issue's
targets and writes a markdown report.

    python tools/bench/fidelity.py --models resnet          # measure (one process per model
    python tools/bench/fidelity.py --models mlp,cnn_clip    #  can run in parallel)
    python tools/bench/fidelity.py --report --md tools/bench/results_fidelity.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ROOT, ensure_models
from snnc.driver import Options, sweep
from snnc.frontend import import_model, load_model
from snnc.report import layer_table

STEPS = [8, 16, 32, 64, 128, 256]
BENCH_DIR = ROOT / "build" / "bench"




def spikingjelly_json() -> Path:
    return BENCH_DIR / "spikingjelly.json"


MODELS = ["mlp", "cnn_clip", "cnn_bn_max", "resnet"]

#: one list for every model. A Clip(0, hi) layer uses lambda = hi under every norm, so on
#: cnn_clip the percentile rows *are* the clip-threshold rows (`--norm clip` compiles the
#: same graph).
SETTINGS = [
    Options(norm="percentile:99.9"),
    Options(norm="percentile:99.9", shift_bias=True),
    Options(norm="percentile:99.9", v_init=0.5),
    Options(norm="channel:99.99"),
    Options(norm="channel:99.99", v_init=0.5),
    Options(norm="channel:99.9", calibrate_bias=True),
]
#: finite input time, read at T1 + T2 only
FIT_SETTINGS = [
    Options(norm="percentile:99.9", fit="5:4"),
    Options(norm="percentile:99.9", fit="5:4", shift_bias=True),
]


def _acc(row: dict, t: int) -> float | None:
    for r in row["snn"]:
        if r["timesteps"] == t:
            return r["accuracy"]
    return None


def _targets(name: str, ann: float, rows: list[dict], sj_best: dict[int, float]) -> list[str]:
    """The issue's targets for this model, each with PASS/MISS and the measured gap."""
    out = []

    def best(ts: list[int], pred=lambda row: True) -> tuple[float, str]:
        cands = [(_acc(r, t), r["setting"]) for r in rows if pred(r) for t in ts
                 if _acc(r, t) is not None]
        return max(cands) if cands else (float("nan"), "-")

    def check(label: str, acc: float, setting: str, tol_pp: float) -> None:
        gap = 100 * (ann - acc)
        ok = gap <= tol_pp + 1e-9
        out.append(f"- {'PASS' if ok else 'MISS'} {label}: {100 * acc:.1f} vs ANN "
                   f"{100 * ann:.1f} (gap {gap:+.1f} pp, target <= {tol_pp} pp) with "
                   f"`{setting}`")

    if name == "mlp":
        a, s = best([9], lambda r: r["options"]["fit"] == "5:4")
        check("FIT, T1+T2 = 9", a, s, 0.1)
    if name == "cnn_clip":
        for t, tol in ((8, 0.2), (16, 0.1)):
            a, s = best([t], lambda r: r["options"]["shift_bias"]
                        and not r["options"]["fit"])
            check(f"clip thresholds + shift bias, T={t}", a, s, tol)
            a, s = best([t], lambda r: not r["options"]["fit"])
            check(f"best setting, T={t}", a, s, tol)
    if name == "cnn_bn_max":
        chan = lambda r: r["options"]["norm"].startswith("channel")  # noqa: E731
        for t, tol in ((16, 0.3), (32, 0.1)):
            a, s = best([t], chan)
            check(f"channel-wise, T={t}", a, s, tol)
        for t in (64, 128, 256):
            a, s = best([t], chan)
            check(f"channel-wise, no decay, T={t}", a, s, 0.1)
    if name == "resnet":
        a, s = best([32])
        check("T=32", a, s, 0.5)
    for t, sj in sorted(sj_best.items()):
        a, s = best([t], lambda r: not r["options"]["fit"])
        ok = a >= sj
        out.append(f"- {'PASS' if ok else 'MISS'} vs SpikingJelly best at T={t}: snnc "
                   f"{100 * a:.1f} (`{s}`) vs SJ {100 * sj:.1f}")
    return out


def _measure(name: str, path: Path, steps: list[int]) -> dict:
    calib, test = MODELS_DIR / "mnist_calib.npz", MODELS_DIR / "mnist_test.npz"
    t0 = time.perf_counter()
    rows = sweep(path, calib, test, steps, SETTINGS)
    fit = (sweep(path, calib, test, sorted({sum(o.fit_steps()) for o in FIT_SETTINGS}),
                 FIT_SETTINGS) if FIT_SETTINGS else None)
    macs = sum(r["macs"] for r in layer_table(import_model(load_model(path)).graph))
    return {"ann_accuracy": rows["ann_accuracy"], "macs": macs, "steps": steps,
            "seconds": time.perf_counter() - t0,
            "snnc": rows["settings"] + (fit["settings"] if fit else [])}


def _section(name: str, res: dict, sj: dict) -> list[str]:
    steps, ann, rows = res["steps"], res["ann_accuracy"], res["snnc"]
    sj_model = sj.get(name) or {}
    sj_recipes = {k: v for k, v in sj_model.items() if isinstance(v, dict)}
    sj_errors = {k: (sj.get("errors") or {}).get(name, {}).get(k, "no result")
                 for k, v in sj_model.items() if v is None}
    sj_best = {t: max(v[str(t)] for v in sj_recipes.values() if str(t) in v)
               for t in steps if any(str(t) in v for v in sj_recipes.values())}
    head = ("| setting | " + " | ".join(f"T={t}" for t in steps)
            + " | T1+T2=9 | spikes/sample @T=32 | SynOps/sample @T=32 |")
    lines = [f"## {name} (ANN {100 * ann:.1f} %, {res['macs']:,} MACs/sample; snnc "
             f"{res['seconds']:.0f} s)", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = ["" if _acc(r, t) is None else f"{100 * _acc(r, t):.1f}" for t in steps]
        a9 = _acc(r, 9)
        at = next((x for x in r["snn"] if x["timesteps"] == 32),
                  next((x for x in r["snn"] if x["timesteps"] == 9), None))
        lines.append(f"| snnc {r['setting']} | " + " | ".join(cells)
                     + f" | {'' if a9 is None else f'{100 * a9:.1f}'} | "
                     + ("|" if at is None else
                        f"{at['spikes_per_sample']:.0f} | {at['synops_per_sample']:.0f}")
                     + " |")
    for recipe, accs in sj_recipes.items():
        cells = [f"{100 * accs[str(t)]:.1f}" if str(t) in accs else "" for t in steps]
        lines.append(f"| SpikingJelly {recipe} | " + " | ".join(cells) + " | | | |")
    for recipe, err in sj_errors.items():
        lines.append(f"| SpikingJelly {recipe} | cannot convert: {err} |")
    # SJ variants measured on a *different* ANN (e.g. Clip replaced by ReLU), for reference
    for variant in sorted(k for k in sj if k.startswith(f"{name}[")):
        v_ann = (sj.get("ann_accuracy") or {}).get(variant)
        for recipe, accs in (sj[variant] or {}).items():
            if isinstance(accs, dict):
                cells = [f"{100 * accs[str(t)]:.1f}" if str(t) in accs else "" for t in steps]
                lines.append(f"| SpikingJelly {recipe} on {variant} (a different ANN"
                             + (f", ANN {100 * v_ann:.1f} %" if v_ann else "") + ") | "
                             + " | ".join(cells) + " | | | |")
    return lines + ["", *_targets(name, ann, rows, sj_best), ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--timesteps", default=",".join(map(str, STEPS)))
    ap.add_argument("--report", action="store_true",
                    help="do not measure: assemble the report from the JSON of earlier runs")
    ap.add_argument("--md", help="write the report to this markdown file")
    ap.add_argument("--sj-json", type=Path, default=spikingjelly_json(),
                    help="SpikingJelly results written by tools/bench/spikingjelly_ref.py "
                    "on the same trained models (default build/bench/spikingjelly.json)")
    args = ap.parse_args()
    names = args.models.split(",")
    steps = [int(t) for t in args.timesteps.split(",")]
    paths = ensure_models(names)
    sj = json.loads(args.sj_json.read_text()) if args.sj_json.is_file() else {}
    report = ["# Conversion fidelity (issue 3)", "",
              "Measured with `python tools/bench/fidelity.py --models M` per model, then "
              "`python tools/bench/fidelity.py --report --md tools/bench/results_fidelity.md`"
              " (mnist5k test split, 1000 images; accuracy in %). Settings: one fixed list "
              "for every model; finite-input-time settings are read at T1+T2 = 9. "
              "SpikingJelly rows: `python tools/bench/spikingjelly_ref.py` on the same "
              "trained weights and test images." + ("" if sj else
                                                    " SpikingJelly not measured."), ""]
    for name in names:
        js = BENCH_DIR / f"fidelity_{name}.json"
        if args.report:
            if not js.is_file():
                report += [f"## {name}", "", f"not measured (no {js.name})", ""]
                continue
            res = json.loads(js.read_text())
        else:
            res = _measure(name, paths[name], steps)
            js.parent.mkdir(parents=True, exist_ok=True)
            js.write_text(json.dumps(res, indent=1))
        section = _section(name, res, sj)
        print("\n".join(section), flush=True)
        report += section
    if args.md:
        Path(args.md).write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
