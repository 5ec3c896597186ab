"""The HTML report (compiler/html_report.py): rendered from the real outputs of a compile,
`snnc eval --json` and `--diagnostics` of a tiny model whose node names are hostile; its
sections, its escaping, its determinism, that it references nothing outside itself, and
(when Debian's `chromium` is installed) what a headless browser makes of it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import ROOT, small_cnn
from helpers import ort_run
from snnc import html_report
from snnc.cli import main
from snnc.html_report import CSP, read_outputs, render, with_outputs

#: node names that would run a script, clear a terminal, reorder text or break a line
HOSTILE = "relu<script>alert(1)</script>\x1b[2J\"&'\u202e"
HOSTILE_CONV = "conv\nline</td>"
SECTIONS = ("summary", "layers", "notes", "coverage", "accuracy", "rates", "k-curve",
            "synops", "energy", "c-footprint", "placement", "verdicts")
TIMESTEPS = (4, 8, 16)


# ------------------------------------------------------------------ fixtures --------------
@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Any]:
    """Compile (C + placement backends) and evaluate (JSON + diagnostics) a tiny CNN with
    hostile node names through the CLI; the three JSON inputs and OUT."""
    d = tmp_path_factory.mktemp("html")
    m = small_cnn(2, residual=True)
    for n in m.graph.node:
        n.name = {"relu1": HOSTILE, "conv1": HOSTILE_CONV}.get(n.name, n.name)
    onnx.save(m, d / "m.onnx")
    x = np.random.default_rng(5).random((48, 1, 12, 12), dtype=np.float32)
    np.savez(d / "calib.npz", x=x[:32])
    np.savez(d / "test.npz", x=x, y=ort_run(m, x)[0].argmax(axis=1))
    out = d / "out"
    assert main([str(d / "m.onnx"), "-o", str(out), "--calib", str(d / "calib.npz"),
                 "--backend", "c,place", "--target", "loihi2"]) == 0
    assert main(["eval", str(out), "--data", str(d / "test.npz"),
                 "--timesteps", ",".join(map(str, TIMESTEPS)), "--json", str(d / "e.json"),
                 "--diagnostics", str(d / "d.json")]) == 0
    return {"dir": d, "out": out,
            "report": json.loads((out / "report.json").read_text()),
            "evaluation": json.loads((d / "e.json").read_text()),
            "diagnostics": json.loads((d / "d.json").read_text())}


@pytest.fixture(scope="module")
def page(outputs) -> bytes:
    return render(with_outputs(outputs["report"], read_outputs(outputs["out"])),
                  outputs["evaluation"], outputs["diagnostics"])


class Dom(HTMLParser):
    """Every element as (tag, attrs, parent chain of ids), plus text and style contents."""

    def __init__(self, data: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.stack: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.feed(data)
        self.close()

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}
    SVG_EMPTY = {"line", "path", "circle", "rect"}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, tuple(i for _, i in self.stack if i)))
        if tag not in self.VOID:
            self.stack.append((tag, a.get("id")))

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, tuple(i for _, i in self.stack if i)))

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style":
            self.styles.append(data)
        self.text.append(data)

    def ids(self) -> list[str]:
        return [a["id"] for _, a, _ in self.elements if a.get("id")]

    def inside(self, ident: str, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a, parents in self.elements if t == tag and ident in parents]


def _dom(page: bytes) -> Dom:
    return Dom(page.decode("utf-8"))


# ------------------------------------------------------------------ always-on -------------
def test_sections_and_their_contents(outputs, page):
    dom = _dom(page)
    ids = dom.ids()
    assert len(ids) == len(set(ids)), "ids are unique"
    for sid in SECTIONS:
        assert sid in ids, sid
    assert [t for t, a, _ in dom.elements if a.get("id") in SECTIONS] == \
        ["section"] * len(SECTIONS)
    rep, ev, diag = outputs["report"], outputs["evaluation"], outputs["diagnostics"]
    # one row per layer of report.json, every column of it
    assert len(dom.inside("layers-table", "tr")) == len(rep["layers"]) + 1
    assert len(dom.inside("layers-table", "th")) == len(rep["layers"][0])
    # accuracy: one marker per simulated T, the ANN as a dashed line, labelled axes
    assert len(dom.inside("accuracy-chart", "circle")) == len(TIMESTEPS)
    assert any("dashed" in (a.get("class") or "")
               for a in dom.inside("accuracy-chart", "line"))
    assert len(dom.inside("accuracy-table", "tr")) == len(ev["snn"]) + 1
    text = "".join(dom.text)
    assert "time steps T" in text and "ANN accuracy (onnxruntime)" in text
    # firing rates: SNN vs ANN bars per layer; the diagnostics table
    n_layers = len(diag["layers"])
    assert len(dom.inside("rates-chart", "rect")) >= 2 * n_layers
    assert len(dom.inside("rates-table", "tr")) == n_layers + 1
    assert len(dom.inside("k-curve-chart", "path")) >= n_layers  # one line per layer
    # SynOps per T vs the ANN's MACs
    assert len(dom.inside("synops-table", "tr")) == len(TIMESTEPS) + 1
    assert len([a for a in dom.inside("synops-chart", "rect")
                if "bar" in (a.get("class") or "")]) == len(TIMESTEPS) + 1  # + legend
    assert f"{rep['ann_macs']:,}" in text
    # energy names its cost table and the table's source
    e = diag["energy"]
    assert e["cost_table"] in text and e["source"] in text
    assert len(dom.inside("cost-table", "tr")) == 4
    # C footprint and placement (from OUT/c/footprint.json and OUT/place/*)
    assert f"{rep['c_footprint']['flash_weights_bytes']:,} B" in text
    assert "c-footprint-layers" in ids and "placement-summary" in ids
    assert "placement-layers" in ids and "placement-chart" in ids
    # every nav link points at a section of the page
    links = [a["href"] for t, a, _ in dom.elements if t == "a"]
    assert links and all(h[1:] in ids for h in links)


def test_only_sections_with_data(outputs):
    rep = outputs["report"]
    ids = _dom(render(rep)).ids()
    for sid in ("summary", "layers", "notes", "coverage", "c-footprint"):
        assert sid in ids
    for sid in ("accuracy", "rates", "k-curve", "synops", "energy", "placement",
                "verdicts", "ttfs"):
        assert sid not in ids
    ids = _dom(render(rep, outputs["evaluation"])).ids()
    assert "accuracy" in ids and "synops" in ids and "rates" not in ids


def test_no_external_references(page):
    dom = _dom(page)
    csp = [a for t, a, _ in dom.elements
           if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert csp == [{"http-equiv": "Content-Security-Policy", "content": CSP}]
    assert "default-src 'none'" in CSP
    # the CSP comes before anything else in <head> but the charset
    assert [t for t, _, _ in dom.elements[:4]] == ["html", "head", "meta", "meta"]
    assert {t for t, _, _ in dom.elements}.isdisjoint(
        {"script", "link", "iframe", "frame", "object", "embed", "img", "base", "form",
         "audio", "video", "source", "track", "picture", "use", "image", "foreignobject"})
    for tag, attrs, _ in dom.elements:
        for k, v in attrs.items():
            assert not k.startswith("on"), (tag, k)  # no event handlers
            if k in ("src", "href", "xlink:href", "action", "formaction", "poster", "data",
                     "srcset", "background", "ping", "cite", "longdesc"):
                assert v and (v.startswith("#") or v.startswith("data:")), (tag, k, v)
            elif k == "xmlns":
                assert v == "http://www.w3.org/2000/svg"  # a namespace name, not a fetch
            else:
                assert "url(" not in (v or "").lower(), (tag, k)
    css = "".join(dom.styles).lower()
    assert "url(" not in css and "@import" not in css and "@font-face" not in css


def test_hostile_names_are_escaped(page):
    assert b"<script" not in page.lower()
    assert b"\x1b" not in page and "\u202e".encode() not in page
    s = page.decode("utf-8")
    shown = "relu&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J&quot;&amp;&#x27;\\u202e"
    assert shown in s
    assert "conv\\nline&lt;/td&gt;" in s
    dom = _dom(page)
    text = "".join(dom.text)
    assert "relu<script>alert(1)</script>\\x1b[2J\"&'\\u202e" in text
    # no control character survives anywhere in the page but the newlines between sections
    assert not any(ord(c) < 32 and c != "\n" for c in s)


def test_deterministic_bytes(outputs, page):
    again = render(with_outputs(json.loads(json.dumps(outputs["report"])),
                                read_outputs(outputs["out"])),
                   json.loads(json.dumps(outputs["evaluation"])),
                   json.loads(json.dumps(outputs["diagnostics"])))
    assert again == page
    # option order does not matter (shown sorted)
    rep = dict(outputs["report"])
    rep["options"] = dict(reversed(list(rep["options"].items())))
    assert render(rep) == render(outputs["report"])
    # nor does the hash seed: a fresh interpreter gives the same bytes
    code = ("import json, sys; from snnc.html_report import *; d = sys.argv[1]; "
            "r = json.load(open(d + '/out/report.json')); "
            "sys.stdout.buffer.write(render(with_outputs(r, read_outputs(d + '/out')), "
            "json.load(open(d + '/e.json')), json.load(open(d + '/d.json'))))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    res = subprocess.run([sys.executable, "-c", code, str(outputs["dir"])],
                         capture_output=True, env=env, timeout=60, check=True)
    assert res.stdout == page


def test_compile_result_renders_like_report_json(outputs):
    """What compile has in memory (report dict, files) renders as OUT read back does: the
    page compile writes and the page eval re-renders agree on the compile's part."""
    from snnc.driver import Options, compile_model

    d = outputs["dir"]
    res = compile_model(d / "m.onnx", None, calib=d / "calib.npz",
                        options=Options(backends=("sim", "c", "place"), target="loihi2"))
    assert render(with_outputs(res.report, res.files)) == \
        render(with_outputs(outputs["report"], read_outputs(outputs["out"])))


def test_ttfs_report_and_evaluation(tmp_path):
    m = small_cnn(3)
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(7).random((24, 1, 12, 12), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    np.savez(tmp_path / "test.npz", x=x, y=ort_run(m, x)[0].argmax(axis=1))
    out = tmp_path / "out"
    assert main([str(tmp_path / "m.onnx"), "-o", str(out), "--calib",
                 str(tmp_path / "calib.npz"), "--coding", "ttfs"]) == 0
    assert main(["eval", str(out), "--data", str(tmp_path / "test.npz"),
                 "--json", str(tmp_path / "e.json")]) == 0
    page = render(json.loads((out / "report.json").read_text()),
                  json.loads((tmp_path / "e.json").read_text()))
    dom = _dom(page)
    ids = dom.ids()
    for sid in ("ttfs", "ttfs-table", "ttfs-chart", "ttfs-schedule", "accuracy", "synops"):
        assert sid in ids, sid
    assert len(dom.inside("accuracy-chart", "circle")) == 1


def test_rate_histograms_when_the_diagnostics_have_them(outputs):
    diag = json.loads(json.dumps(outputs["diagnostics"]))
    diag["layers"][0]["rate_histogram"] = {"edges": [0.0, 0.25, 0.5, 0.75, 1.0],
                                           "counts": [10, 0, 3, 1]}
    dom = _dom(render(outputs["report"], None, diag))
    assert len(dom.inside("rates-hist-0", "rect")) == 3  # empty bins draw nothing
    assert "rates-chart" in dom.ids()


def test_text_and_numbers():
    assert html_report.visible("a\x1b[2J\tb\n\u202e\ud800\U000e0001") == \
        "a\\x1b[2J\\tb\\n\\u202e\\ud800\\U000e0001"
    assert html_report.text("<a href='x'>&") == "&lt;a href=&#x27;x&#x27;&gt;&amp;"
    assert html_report.text("µ-naïve ünïcode λ") == "µ-naïve ünïcode λ"
    assert html_report.num(1031744) == "1,031,744"
    assert html_report.num(np.float32(0.5)) == "0.5"
    assert html_report.num(-0.0) == "0" and html_report.num(float("nan")) == "nan"
    assert html_report.num(None) == "\u2013" and html_report.num(True) == "yes"
    assert html_report.num(12345.678) == "12,345.7"
    assert html_report.nice_ticks(0, 0.078) == [0.0, 0.02, 0.04, 0.06, 0.08]
    # a lone surrogate in a name (possible in JSON) does not break the encoding
    rep = {"source": "m\ud800.onnx", "layers": [{"name": "\ud800", "kind": "if"}]}
    page = render(rep)
    assert b"\\ud800" in page
    page.decode("utf-8")


# ------------------------------------------------------------------ headless Chromium -----
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = "http://snnc-probe.invalid/"
#: Chromium's own service traffic (network time, account and search preconnects) that no
#: flag turns off in every version: sent to the proxy like the rest, but not the page's
BROWSER_HOSTS = (".google.com", ".googleapis.com", ".gvt1.com", ".gstatic.com")


def _page_requests(seen: list[str]) -> list[str]:
    """The recorded requests minus Chromium's own (by host)."""
    out = []
    for s in seen:
        target = s.split(" ", 1)[1]
        host = target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
        if not host.endswith(BROWSER_HOSTS):
            out.append(s)
    return out


class _Recorder(BaseHTTPRequestHandler):
    """An HTTP proxy that answers 404 to everything and records what was asked."""

    seen: list[str] = []

    def _record(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Recorder.seen
    server.shutdown()
    server.server_close()


def _chromium_dom(path: Path, port: int, profile: Path) -> str:
    """The DOM after load, every network request of the page sent to the local proxy."""
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-default-apps", "--disable-extensions",
         "--no-pings", "--disable-domain-reliability", "--metrics-recording-only",
         "--disable-features=NetworkTimeServiceQuerying,PreconnectToSearch,"
         "OptimizationHints,MediaRouter,Translate",
         f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{port}",
         "--proxy-bypass-list=<-loopback>", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_renders_it_and_it_loads_nothing(outputs, page, proxy, tmp_path):
    port, seen = proxy
    f = tmp_path / "report.html"
    f.write_bytes(page)
    dom = Dom(_chromium_dom(f, port, tmp_path / "profile"))
    ids = dom.ids()
    for sid in SECTIONS:
        assert sid in ids, sid
    svgs = [a.get("id") for t, a, _ in dom.elements if t == "svg"]
    for chart in ("accuracy-chart", "rates-chart", "k-curve-chart", "synops-chart",
                  "energy-chart", "c-ram-chart", "placement-chart"):
        assert chart in svgs, chart
    assert len(dom.inside("accuracy-chart", "circle")) == len(TIMESTEPS)
    assert len(dom.inside("layers-table", "tr")) == len(outputs["report"]["layers"]) + 1
    assert len(dom.inside("synops-table", "tr")) == len(TIMESTEPS) + 1
    # the browser built no script element from the hostile name, and shows it as text
    assert not [t for t, _, _ in dom.elements if t == "script"]
    assert "relu<script>alert(1)</script>\\x1b[2J" in "".join(dom.text)
    for tag, attrs, _ in dom.elements:
        for k, v in attrs.items():
            assert k == "xmlns" or not (v or "").lower().startswith(("http:", "https:")), \
                (tag, k, v)
    assert _page_requests(seen) == [], seen


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_csp_blocks_what_would_load(page, proxy, tmp_path):
    """Were a reference ever to slip into the page, the CSP stops the request; the same
    page without the CSP does make it (so the proxy sees what the browser fetches)."""
    port, seen = proxy
    probes = (f'<img src="{PROBE}img.png"><link rel="stylesheet" href="{PROBE}x.css">'
              f'<div style="background:url({PROBE}bg.png)">x</div>'
              f'<script src="{PROBE}x.js"></script>').encode()
    hostile = page.replace(b"</main>", probes + b"</main>")
    (tmp_path / "csp.html").write_bytes(hostile)
    _chromium_dom(tmp_path / "csp.html", port, tmp_path / "profile")
    assert _page_requests(seen) == [], seen
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'.encode()
    assert meta in hostile
    (tmp_path / "nocsp.html").write_bytes(hostile.replace(meta, b""))
    _chromium_dom(tmp_path / "nocsp.html", port, tmp_path / "profile")
    asked = " ".join(_page_requests(seen))
    for probe in ("img.png", "x.css", "x.js"):  # each kind of reference is fetched
        assert PROBE + probe in asked, seen


def test_module_imports_only_stdlib_and_snnc_leaves():
    import ast

    tree = ast.parse((ROOT / "compiler" / "html_report.py").read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
    assert mods <= set(sys.stdlib_module_names) | {"snnc", "numpy"}, mods
    snnc = {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("snnc")}
    # the IR and the pipeline syntax; no backend, no driver (the report is about data)
    assert all(m.startswith("snnc.ir") or m == "snnc.passmanager" for m in snnc), snnc


def test_compile_writes_it_and_eval_updates_it(outputs, page, tmp_path):
    """OUT/report.html: written by the compile (no evaluation yet), re-rendered by
    `snnc eval` with the results (the same bytes as render() on them), its manifest hash
    kept true; --no-report leaves it alone."""
    import hashlib

    out = outputs["out"]
    assert (out / "report.html").read_bytes() == page
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["report.html"] == hashlib.sha256(page).hexdigest()
    fresh = tmp_path / "fresh"
    assert main([str(outputs["dir"] / "m.onnx"), "-o", str(fresh), "--calib",
                 str(outputs["dir"] / "calib.npz")]) == 0
    compiled = (fresh / "report.html").read_bytes()
    assert b'id="layers"' in compiled and b'id="accuracy"' not in compiled
    assert main(["eval", str(fresh), "--data", str(outputs["dir"] / "test.npz"),
                 "--timesteps", "4", "--no-report"]) == 0
    assert (fresh / "report.html").read_bytes() == compiled
