"""snnc's Speck and Xylo placements against SynSense's own tools (issue 16, item 5).

For each network: snnc compiles it and places it on the `speck` / `xylo_audio2` preset
(`snnc.driver.place`, what `snnc place OUT --target T` runs); tools/bench/vendor_check.py
builds the same ONNX network through sinabs' DYNAP-CNN backend (layer -> core mapping and
memory check) or rockpool's Xylo mapper (design-rule check), in the venv where those
install. The verdicts (fits or not), the core counts and, for Speck, the layer -> core
assignments are compared side by side.

    python tools/bench/place_vendor.py [--vendor-python /work/venv-vendor/bin/python]

Networks: Speck: the trained mnist5k models of tools/train_mnist.py. Xylo: the mnist5k
MLP (784 inputs: too many for Xylo) and random dense networks sized around Xylo Audio 2's
limits (16 input channels, 1,000 hidden neurons, 8 outputs), written as ONNX here.
samna (SynSense's device library) does not install from PyPI, so its final
configuration check is not run (vendor_check.py says so in "notes").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, ensure_models  # noqa: E402

HERE = Path(__file__).resolve().parent
SPECK_MODELS = ["cnn_avg", "cnn_clip", "cnn_bn_max", "cnn_big", "resnet", "mlp"]
#: dense networks around Xylo Audio 2's limits: inputs-hidden...-outputs
XYLO_SIZES = ["16-64-8", "16-1000-8", "16-300-200-8", "16-1001-8", "16-600-500-8",
              "16-64-9", "17-64-8"]


def mlp_onnx(sizes: list[int], path: Path, seed: int = 0) -> None:
    """A random ReLU MLP (Gemm layers, He-scaled weights) as ONNX."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "x"
    for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((b, a)) * np.sqrt(2.0 / a)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{k}"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"g{k}"], transB=1,
                                      name=f"fc{k}"))
        x = f"g{k}"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{k}"], name=f"relu{k}"))
            x = f"r{k}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, sizes[0]])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, sizes[-1]])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def snnc_place(model: Path, calib: Path, target: str, out: Path) -> dict:
    from snnc.driver import compile_model, place
    from snnc.ir.errors import SnncError

    compile_model(model, out, calib=calib)
    try:
        res = place(out, target, seed=0)
    except SnncError as e:
        return {"feasible": False, "cores": None, "error": str(e).splitlines()[0]}
    p = json.loads((out / "place" / "placement.json").read_text())
    layer2core: dict[str, int] = {}
    for s in p["slices"]:
        layer2core.setdefault(s["layer"], s["core"])
    return {"feasible": True, "cores": res["summary"]["cores_used"],
            "layer2core": layer2core, "error": None}


def vendor(python: str, flag: str, models: list[str]) -> list[dict]:
    cmd = [python, str(HERE / "vendor_check.py"), flag, *models]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                 "PYTHONWARNINGS": "ignore"})
    if r.returncode:
        raise SystemExit(f"vendor_check.py failed:\n{r.stderr[-2000:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def _verdict(ok: bool) -> str:
    return "fits" if ok else "refused"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vendor-python", default=os.environ.get(
        "SNNC_VENDOR_PYTHON", "/work/venv-vendor/bin/python"),
        help="a Python with sinabs and rockpool installed (see vendor_check.py)")
    ap.add_argument("--json", metavar="FILE", help="write every row as JSON")
    args = ap.parse_args()
    if not Path(args.vendor_python).exists():
        print(f"no vendor Python at {args.vendor_python}: see vendor_check.py to install "
              "sinabs and rockpool", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        paths = ensure_models(SPECK_MODELS)
        calib = MODELS_DIR / "mnist_calib.npz"
        sk = vendor(args.vendor_python, "--speck", [str(paths[m]) for m in SPECK_MODELS])
        print("Speck: snnc (speck preset) vs sinabs 3 DYNAP-CNN mapping")
        print(f"{'network':12s} {'snnc':8s} {'sinabs':8s} {'cores':>11s}  agree  "
              "layer->core snnc | sinabs")
        for name, v in zip(SPECK_MODELS, sk):
            s = snnc_place(paths[name], calib, "speck", tmp / f"speck_{name}")
            agree = s["feasible"] == v["feasible"] and (
                not s["feasible"] or s["cores"] == v["cores"])
            l2c = (f"{list(s['layer2core'].values())} | {list(v['layer2core'].values())}"
                   if s["feasible"] and v["feasible"] else "")
            print(f"{name:12s} {_verdict(s['feasible']):8s} {_verdict(v['feasible']):8s} "
                  f"{str(s['cores']):>5s}/{str(v['cores']):<5s}  {'yes' if agree else 'NO':5s}"
                  f"  {l2c}")
            for who, r in (("snnc", s), ("sinabs", v)):
                if r.get("error"):
                    print(f"{'':12s}   {who}: {r['error'][:150]}")
            rows.append({"chip": "speck", "network": name, "snnc": s, "vendor": v,
                         "agree": agree})
        xmodels = {"mnist mlp": paths["mlp"]}
        xcalib = {"mnist mlp": calib}
        for sz in XYLO_SIZES:
            sizes = [int(v) for v in sz.split("-")]
            mp = tmp / f"mlp_{sz}.onnx"
            mlp_onnx(sizes, mp)
            cp = tmp / f"mlp_{sz}_calib.npz"
            np.savez(cp, x=np.random.default_rng(1).random((32, sizes[0]), np.float32))
            xmodels[sz], xcalib[sz] = mp, cp
        xv = vendor(args.vendor_python, "--xylo", [str(p) for p in xmodels.values()])
        print("\nXylo Audio 2: snnc (xylo_audio2 preset) vs rockpool 3 Xylo mapper")
        print(f"{'network':12s} {'snnc':8s} {'rockpool':8s}  agree")
        for (name, mp), v in zip(xmodels.items(), xv):
            s = snnc_place(mp, xcalib[name], "xylo_audio2",
                           tmp / f"xylo_{name.replace(' ', '_')}")
            agree = s["feasible"] == v["feasible"]
            print(f"{name:12s} {_verdict(s['feasible']):8s} {_verdict(v['feasible']):8s}  "
                  f"{'yes' if agree else 'NO'}")
            for who, r in (("snnc", s), ("rockpool", v)):
                msg = r.get("error") or "; ".join(r.get("notes", [])[:1]) if who != "snnc" \
                    else r.get("error")
                if msg and not (who == "rockpool" and r["feasible"]):
                    print(f"{'':12s}   {who}: {str(msg)[:150]}")
            rows.append({"chip": "xylo_audio2", "network": name, "snnc": s, "vendor": v,
                         "agree": agree})
    n_ok = sum(r["agree"] for r in rows)
    print(f"\nagreement: {n_ok}/{len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
