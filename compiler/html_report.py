"""The report people read: one self-contained HTML5 page about a compile (OUT/report.json)
and, when there is one, its evaluation (`snnc eval --json`) and its conversion diagnostics
(`snnc eval --diagnostics`).

`render(report, evaluation, diagnostics) -> bytes` is a pure function of its inputs: the
same inputs give the same bytes (no timestamps, fixed number formats, SVG coordinates
rounded to 0.1 px, tables in the order the inputs give or sorted where they give none).

Decision: the page loads nothing. CSS is inline, every chart is inline SVG drawn here
(a few lines of arithmetic: no plotting library, no script), and a Content-Security-Policy
meta element (`default-src 'none'`) forbids the browser any request even if a string
slipped through. The only links are #fragments of the page itself.

Decision: every string that comes from the model or from a file (layer and node names,
verdicts, cost-table sources, option values) goes through `text()`: control and format
characters are shown as escapes (ESC as \\x1b, a bidi override as \\u202e, a newline as
\\n) so that a name cannot hide or reorder what is printed around it, then html.escape.
Nothing from the inputs ever becomes an id, a class or a URL.

Sections appear only when their data exists: summary (model, snnc version, pipeline,
options), layers, compile notes (normalization scales, bias calibration, TTFS schedule,
quantization), ONNX coverage, accuracy vs T, firing rates, Ding's K curve, spikes and
SynOps vs the ANN's MACs, temporal coding, energy, C footprint, placement, verdicts.
Stable ids (see SECTION_IDS) let tests and readers link to them.

Beyond report.json the page shows the per-layer C footprint and the placement summary
when the report carries them as "c_footprint_layers", "placement" and
"placement_layers"; `with_outputs(report, files)` adds them from a compile's output files
(c/footprint.json, place/summary.json, place/layers.csv) and `read_outputs(out_dir)`
reads those files from an OUT directory.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from snnc.ir.errors import printable
from snnc.passmanager import split_pipeline

#: forbids every request: no scripts, frames, fonts, fetches; styles only inline;
#: images only data: URLs (none are used today)
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

#: section id -> heading, in page order
SECTION_IDS: dict[str, str] = {
    "summary": "Summary",
    "layers": "Layers",
    "notes": "Compile notes",
    "coverage": "ONNX coverage",
    "accuracy": "Accuracy vs time steps",
    "rates": "Firing rates",
    "k-curve": "Convergence of the rates (K curve)",
    "synops": "Spikes and SynOps vs the ANN's MACs",
    "ttfs": "Temporal coding",
    "energy": "Energy estimate",
    "c-footprint": "C footprint",
    "placement": "Placement",
    "verdicts": "Verdicts",
    "other": "Other report entries",
}

#: the files of a compile's output that with_outputs() reads
OUTPUT_FILES = ("c/footprint.json", "place/summary.json", "place/layers.csv")

#: report keys rendered by a dedicated section (the rest go to "other")
_KNOWN_KEYS = frozenset({
    "snnc_version", "source", "pipeline", "options", "coverage", "lambda",
    "bias_calibration", "ttfs_schedule", "offset_compensation", "layers", "ann_macs",
    "quantization", "c_footprint", "c_footprint_layers", "placement", "placement_layers"})

#: layer kinds that are neuron populations (the rows the layer table highlights)
_NEURON_KINDS = frozenset({"if", "lif", "ttfsneuron", "spikesoftmax"})


# ------------------------------------------------------------------ text ------------------
def visible(s: Any) -> str:
    """str(s) with every control / format character written as a Python-style escape
    (snnc.ir.errors.printable: the one escaping function for names from a model)."""
    return printable(s)


def text(s: Any) -> str:
    """Any value as HTML text (also safe inside a quoted attribute)."""
    return html.escape(visible(s), quote=True)


def _short(s: Any, n: int) -> str:
    """A visible form of s cut to n characters (for chart labels; the full name is in the
    element's <title>)."""
    v = visible(s)
    return v if len(v) <= n else v[:n - 1] + "\u2026"


# ------------------------------------------------------------------ numbers ---------------
def _is_num(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def num(v: Any, spec: str | None = None) -> str:
    """A number for a table cell: ints with thousands separators, floats to 4 significant
    digits (or `spec`), None as a dash. Non-numbers go through text()."""
    if v is None:
        return "\u2013"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Integral):
        return f"{int(v):,}"
    if not isinstance(v, Real):
        return text(v)
    f = float(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    f = f + 0.0  # no "-0"
    if spec is not None:
        return format(f, spec)
    a = abs(f)
    if f.is_integer() and a < 1e15:
        return f"{int(f):,}"
    if a >= 1000:
        return f"{f:,.1f}"
    if a >= 1e-3:
        return f"{f:.4g}"
    return f"{f:.3e}"


def _pct(v: Any) -> str:
    return num(v, ".1%") if _is_num(v) else num(v)


def _si(v: float) -> str:
    """A compact axis label: 1.5M, 200k, 0.25."""
    a = abs(v)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v + 0.0:.3g}"


_TIMES = "\u00d7"


def _c(v: float) -> str:
    """An SVG coordinate."""
    return f"{v + 0.0:.1f}"


# ------------------------------------------------------------------ HTML pieces -----------
def _cell(v: Any, key: str = "") -> str:
    """One <td>: numbers right-aligned; shapes as 16×28×28; other lists and dicts compact."""
    if _is_num(v) or isinstance(v, bool):
        return f'<td class="num">{num(v)}</td>'
    if isinstance(v, (list, tuple)):
        if key == "shape" and all(isinstance(d, Integral) for d in v):
            return f'<td class="num">{_TIMES.join(str(int(d)) for d in v) or "scalar"}</td>'
        if v and all(_is_num(x) for x in v):
            if len(v) <= 6:
                return f'<td class="num">{", ".join(num(x) for x in v)}</td>'
            return (f'<td class="num">{len(v)} values, {num(min(v))} \u2026 '
                    f"{num(max(v))}</td>")
        return f"<td>{text(_compact(v))}</td>"
    if isinstance(v, Mapping):
        return f"<td>{text(_compact(v))}</td>"
    if v is None:
        return f"<td>{num(None)}</td>"
    if key in _NAME_KEYS:
        return f'<td class="name">{text(v)}</td>'
    return f"<td>{text(v)}</td>"


#: columns that hold names from the model (shown in a monospace font, wrapped anywhere)
_NAME_KEYS = frozenset({"name", "layer", "origin", "population", "op", "model"})


def _compact(v: Any) -> str:
    """Nested values on one line (keys sorted: deterministic whatever the input order)."""
    return json.dumps(v, sort_keys=True, ensure_ascii=False, default=str,
                      separators=(", ", ": "))


#: column headings that read better than the key with spaces
_HEADINGS = {"timesteps": "T", "spikes_per_sample": "spikes / sample",
             "synops_per_sample": "SynOps / sample", "ann_macs": "ANN MACs / sample",
             "macs": "MACs", "spikes_per_neuron": "spikes / neuron"}


def _header_of(key: str) -> str:
    return _HEADINGS.get(key, key.replace("_", " "))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
          headers: Mapping[str, str] | None = None,
          formats: Mapping[str, Callable[[Any], str]] | None = None,
          tid: str | None = None, row_class: Callable[[Mapping[str, Any]], str] | None = None
          ) -> str:
    """An HTML table of dict rows; columns default to every key, in first-seen order."""
    if columns is None:
        seen: dict[str, None] = {}
        for r in rows:
            for k in r:
                seen.setdefault(k, None)
        columns = list(seen)
    headers = headers or {}
    formats = formats or {}
    head = "".join(f'<th scope="col">{text(headers.get(c, _header_of(c)))}</th>'
                   for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if c in formats and v is not None:
                cells.append(f'<td class="num">{formats[c](v)}</td>')
            else:
                cells.append(_cell(v, c))
        cls = row_class(r) if row_class else ""
        tr = f'<tr class="{cls}">' if cls else "<tr>"
        body.append(tr + "".join(cells) + "</tr>")
    ident = f' id="{tid}"' if tid else ""
    return (f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def kv_table(pairs: Sequence[tuple[str, Any]], tid: str | None = None) -> str:
    """A two-column table: label (ours) and value (a number or text from the inputs)."""
    rows = []
    for k, v in pairs:
        cell = _cell(v, k) if not isinstance(v, _Raw) else f"<td>{v.html}</td>"
        rows.append(f'<tr><th scope="row">{text(k)}</th>{cell}</tr>')
    ident = f' id="{tid}"' if tid else ""
    return f'<table class="kv"{ident}><tbody>{"".join(rows)}</tbody></table>'


class _Raw:
    """Already-built HTML for a kv_table value."""

    def __init__(self, html_: str):
        self.html = html_


# ------------------------------------------------------------------ charts ----------------
_W = 640          # default chart width (px; the SVG scales down with the page)
_PLOT_H = 240     # plot area height
_L, _R, _T, _B = 72, 24, 16, 56  # margins: left (y labels), right, top, bottom (x labels)
_LEGEND_ROW = 18


class _Scale:
    """Data -> pixels, linear or logarithmic."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, log: bool = False):
        self.log = log
        self.lo, self.hi = self._x(lo, 0.0), self._x(hi, 1.0)
        if not self.hi > self.lo:
            self.hi = self.lo + 1.0
        self.p0, self.p1 = p0, p1

    def _x(self, v: float, default: float) -> float:
        """v on the axis; a non-finite value (a broken evaluation) or, on a log axis, a
        value <= 0 is drawn at the edge instead of failing the page."""
        v = float(v) if isinstance(v, (int, float)) else default
        if not math.isfinite(v):
            v = default if not self.log else (1e300 if v > 0 else 1e-300)
        return math.log(max(v, 1e-300)) if self.log else v

    def __call__(self, v: float) -> float:
        x = self._x(v, self.lo if not self.log else 1e-300)
        p = self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)
        return min(max(p, min(self.p0, self.p1) - 1e4), max(self.p0, self.p1) + 1e4)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps 1, 2, 2.5 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades covering [lo, hi] (both > 0)."""
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    return [10.0 ** k for k in range(a, max(a, b) + 1)]


def _spread(ticks: Sequence[float], scale: _Scale, gap: float) -> list[float]:
    """Drop ticks closer than `gap` px to the previous one kept."""
    kept: list[float] = []
    for t in sorted(set(ticks)):
        if not kept or abs(scale(t) - scale(kept[-1])) >= gap:
            kept.append(t)
    return kept


def _svg_open(cid: str, width: float, height: float, title: str) -> list[str]:
    return [f'<svg id="{cid}" class="chart" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {_c(width)} {_c(height)}" width="{_c(width)}" '
            f'height="{_c(height)}" role="img" aria-labelledby="{cid}-title">',
            f'<title id="{cid}-title">{text(title)}</title>']


def _axes(out: list[str], xs: _Scale, ys: _Scale, xticks: Sequence[float],
          yticks: Sequence[float], xfmt: Callable[[float], str],
          yfmt: Callable[[float], str], xlabel: str, ylabel: str) -> None:
    x0, x1, y0, y1 = xs.p0, xs.p1, ys.p0, ys.p1  # y0 bottom, y1 top
    for t in yticks:
        y = ys(t)
        out.append(f'<line class="grid" x1="{_c(x0)}" y1="{_c(y)}" x2="{_c(x1)}" '
                   f'y2="{_c(y)}"/>')
        out.append(f'<text class="tick" x="{_c(x0 - 6)}" y="{_c(y + 4)}" '
                   f'text-anchor="end">{text(yfmt(t))}</text>')
    for t in xticks:
        x = xs(t)
        out.append(f'<line class="tickmark" x1="{_c(x)}" y1="{_c(y0)}" x2="{_c(x)}" '
                   f'y2="{_c(y0 + 5)}"/>')
        out.append(f'<text class="tick" x="{_c(x)}" y="{_c(y0 + 18)}" '
                   f'text-anchor="middle">{text(xfmt(t))}</text>')
    out.append(f'<path class="axis" d="M{_c(x0)} {_c(y1)}V{_c(y0)}H{_c(x1)}"/>')
    out.append(f'<text class="label" x="{_c((x0 + x1) / 2)}" y="{_c(y0 + 38)}" '
               f'text-anchor="middle">{text(xlabel)}</text>')
    cy = (y0 + y1) / 2
    out.append(f'<text class="label" x="16" y="{_c(cy)}" text-anchor="middle" '
               f'transform="rotate(-90 16 {_c(cy)})">{text(ylabel)}</text>')


def _legend(out: list[str], entries: Sequence[tuple[str, str, str]], top: float) -> None:
    """entries: (label, css class, kind: line|dash|bar) one per row below the plot."""
    for i, (label, cls, kind) in enumerate(entries):
        y = top + i * _LEGEND_ROW
        if kind == "bar":
            out.append(f'<rect class="bar {cls}" x="{_L}" y="{_c(y - 9)}" width="18" '
                       f'height="10"/>')
        else:
            dash = " dashed" if kind == "dash" else ""
            out.append(f'<line class="line {cls}{dash}" x1="{_L}" y1="{_c(y - 4)}" '
                       f'x2="{_L + 18}" y2="{_c(y - 4)}"/>')
        out.append(f'<text class="legend" x="{_L + 26}" y="{_c(y)}">'
                   f'{text(_short(label, 80))}</text>')


def line_chart(cid: str, title: str, series: Sequence[Mapping[str, Any]], *,
               xlabel: str, ylabel: str, xlog: bool = False, ylog: bool = False,
               yrange: tuple[float, float] | None = None,
               xticks: Sequence[float] | None = None,
               hlines: Sequence[tuple[str, float, str]] = (),
               xfmt: Callable[[float], str] = _si, yfmt: Callable[[float], str] = _si
               ) -> str:
    """Lines with (optional) markers. series: {"label", "points": [(x, y)], "cls",
    "markers": bool}; hlines: (label, y, css class) horizontal dashed references."""
    pts = [(x, y) for s in series for x, y in s["points"]
           if y is not None and math.isfinite(y) and (not ylog or y > 0)
           and (not xlog or x > 0)]
    xsv = [p[0] for p in pts] or [0.0, 1.0]
    ysv = [p[1] for p in pts] + [h[1] for h in hlines]
    if ylog:
        ysv = [y for y in ysv if y > 0]
    ysv = ysv or [0.0, 1.0]
    width = _W
    legend = [(s["label"], s["cls"], "line") for s in series] + \
             [(h[0], h[2], "dash") for h in hlines]
    height = _T + _PLOT_H + _B + len(legend) * _LEGEND_ROW + 6
    xlo, xhi = min(xsv), max(xsv)
    if xlo == xhi:  # one point: centre it
        xlo, xhi = (xlo / 2, xhi * 2) if xlog else (xlo - 1, xhi + 1)
    xs = _Scale(xlo, xhi, _L, width - _R, xlog)
    if ylog:
        yt = _log_ticks(min(ysv), max(ysv))
    else:
        lo, hi = yrange if yrange else (min(ysv), max(ysv))
        yt = nice_ticks(lo, hi)
    ys = _Scale(yt[0], yt[-1], _T + _PLOT_H, _T, ylog)
    if xticks is None:
        xticks = (_log_ticks(min(xsv), max(xsv)) if xlog else nice_ticks(min(xsv), max(xsv)))
        xticks = [t for t in xticks if min(xsv) <= t <= max(xsv)] or [min(xsv)]
    out = _svg_open(cid, width, height, title)
    _axes(out, xs, ys, _spread(xticks, xs, 28), yt, xfmt, yfmt, xlabel, ylabel)
    for label, y, cls in hlines:
        py = ys(y)
        out.append(f'<line class="line dashed {cls}" x1="{_c(xs.p0)}" y1="{_c(py)}" '
                   f'x2="{_c(xs.p1)}" y2="{_c(py)}"><title>{text(label)}: '
                   f'{text(yfmt(y))}</title></line>')
    for s in series:
        good = [(x, y) for x, y in s["points"] if y is not None and math.isfinite(y)
                and (not ylog or y > 0) and (not xlog or x > 0)]
        if not good:
            continue
        d = "M" + "L".join(f"{_c(xs(x))} {_c(ys(y))}" for x, y in good)
        out.append(f'<path class="line {s["cls"]}" d="{d}"/>')
        if s.get("markers", True):
            for x, y in good:
                out.append(f'<circle class="dot {s["cls"]}" cx="{_c(xs(x))}" '
                           f'cy="{_c(ys(y))}" r="3.5"><title>{text(s["label"])}: '
                           f'{text(xfmt(x))}, {text(yfmt(y))}</title></circle>')
    _legend(out, legend, _T + _PLOT_H + _B + 12)
    out.append("</svg>")
    return "".join(out)


def bar_chart(cid: str, title: str, categories: Sequence[Any],
              groups: Sequence[tuple[str, Sequence[float | None], str]], *,
              xlabel: str, ylabel: str, hlines: Sequence[tuple[str, float, str]] = (),
              yfmt: Callable[[float], str] = _si, vfmt: Callable[[Any], str] = num,
              yrange: tuple[float, float] | None = None, label_chars: int = 16) -> str:
    """Grouped vertical bars: one group of bars per category (labels may be model names:
    cut to label_chars, in full in the bars' <title>); hlines as in line_chart."""
    n, k = len(categories), max(1, len(groups))
    slot = max(28.0, 10.0 * k + 14)
    width = max(_W, _L + _R + n * slot)
    vals = [v for _, vs, _ in groups for v in vs if v is not None and math.isfinite(v)]
    vals += [h[1] for h in hlines]
    lo, hi = yrange if yrange else (min([0.0, *vals]), max([0.0, *vals]))
    yt = nice_ticks(lo, hi if hi > lo else lo + 1.0)
    ys = _Scale(yt[0], yt[-1], _T + _PLOT_H, _T)
    slot = (width - _L - _R) / max(1, n)
    bw = min(28.0, (slot - 8) / k)
    legend = [(g[0], g[2], "bar") for g in groups] + [(h[0], h[2], "dash") for h in hlines]
    rotate = any(len(visible(c)) > 6 for c in categories) and n > 3
    bottom = _B + (44 if rotate else 0)
    height = _T + _PLOT_H + bottom + len(legend) * _LEGEND_ROW + 6
    out = _svg_open(cid, width, height, title)
    xs = _Scale(0, 1, _L, width - _R)
    _axes(out, xs, ys, [], yt, str, yfmt, "", ylabel)
    base = ys(max(yt[0], min(0.0, yt[-1])))
    for i, cat in enumerate(categories):
        cx = _L + (i + 0.5) * slot
        left = cx - bw * k / 2
        for j, (glabel, gvals, cls) in enumerate(groups):
            v = gvals[i] if i < len(gvals) else None
            if v is None or not math.isfinite(v):
                continue
            y = ys(v)
            top, h = min(y, base), abs(base - y)
            out.append(f'<rect class="bar {cls}" x="{_c(left + j * bw)}" y="{_c(top)}" '
                       f'width="{_c(bw - 1)}" height="{_c(h)}"><title>{text(cat)} \u2014 '
                       f'{text(glabel)}: {vfmt(v)}</title></rect>')
        y0 = _T + _PLOT_H
        if rotate:
            out.append(f'<text class="tick" x="{_c(cx)}" y="{_c(y0 + 14)}" '
                       f'text-anchor="end" transform="rotate(-35 {_c(cx)} {_c(y0 + 14)})">'
                       f'{text(_short(cat, label_chars))}<title>{text(cat)}</title></text>')
        else:
            out.append(f'<text class="tick" x="{_c(cx)}" y="{_c(y0 + 18)}" '
                       f'text-anchor="middle">{text(_short(cat, label_chars))}'
                       f'<title>{text(cat)}</title></text>')
    for label, y, cls in hlines:
        py = ys(y)
        out.append(f'<line class="line dashed {cls}" x1="{_c(_L)}" y1="{_c(py)}" '
                   f'x2="{_c(width - _R)}" y2="{_c(py)}"><title>{text(label)}: '
                   f'{vfmt(y)}</title></line>')
    y0 = _T + _PLOT_H
    out.append(f'<text class="label" x="{_c((_L + width - _R) / 2)}" '
               f'y="{_c(y0 + bottom - 18)}" text-anchor="middle">{text(xlabel)}</text>')
    _legend(out, legend, _T + _PLOT_H + bottom + 12)
    out.append("</svg>")
    return "".join(out)


def histogram(cid: str, title: str, edges: Sequence[float], counts: Sequence[float], *,
              xlabel: str, ylabel: str) -> str:
    """Contiguous bars: counts[i] over [edges[i], edges[i+1])."""
    width = _W
    height = _T + _PLOT_H + _B + 6
    xs = _Scale(edges[0], edges[-1], _L, width - _R)
    yt = nice_ticks(0.0, max([1.0, *counts]))
    ys = _Scale(yt[0], yt[-1], _T + _PLOT_H, _T)
    out = _svg_open(cid, width, height, title)
    _axes(out, xs, ys, _spread(nice_ticks(edges[0], edges[-1]), xs, 36), yt,
          lambda v: f"{v + 0.0:.3g}", _si, xlabel, ylabel)
    for a, b, n in zip(edges, edges[1:], counts):
        if not n:
            continue
        x, y = xs(a), ys(n)
        out.append(f'<rect class="bar c0" x="{_c(x)}" y="{_c(y)}" '
                   f'width="{_c(max(0.5, xs(b) - x - 0.5))}" height="{_c(ys.p0 - y)}">'
                   f'<title>[{a + 0.0:.4g}, {b + 0.0:.4g}): {num(n)}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


# ------------------------------------------------------------------ sections --------------
def _section(sid: str, body: str, heading: str | None = None) -> str:
    return (f'<section id="{sid}"><h2>{text(heading or SECTION_IDS[sid])}</h2>'
            f"{body}</section>")


def _split_pipeline(spec: str) -> list[str]:
    """'a,b{x=1,y=2},c' -> ['a', 'b{x=1,y=2}', 'c'] (commas inside braces stay)."""
    return [p for p in split_pipeline(spec) if p]


def _summary(report: Mapping[str, Any], evaluation: Mapping[str, Any] | None,
             present: Sequence[str]) -> str:
    layers = report.get("layers") or []
    pairs: list[tuple[str, Any]] = [("model", report.get("source")),
                                    ("snnc version", report.get("snnc_version"))]
    opts = report.get("options")
    if isinstance(opts, Mapping):
        for k, label in (("coding", "coding"), ("timesteps", "time steps (compiled)"),
                         ("arith", "arithmetic")):
            if k in opts:
                pairs.append((label, opts[k]))
    if layers:
        pops = [r for r in layers if r.get("neurons")]
        pairs += [("spiking layers", len(pops)),
                  ("neurons", sum(int(r.get("neurons") or 0) for r in layers))]
    if "ann_macs" in report:
        pairs.append(("ANN MACs per sample", report["ann_macs"]))
    if evaluation:
        if "ann_accuracy" in evaluation:
            pairs.append(("ANN accuracy", _Raw(_pct(evaluation["ann_accuracy"]))))
        snn = evaluation.get("snn") or []
        if snn:  # the longest simulation (eval sorts the lengths)
            last = snn[-1]
            pairs.append((f"SNN accuracy at T={num(last.get('timesteps'))}",
                          _Raw(_pct(last.get("accuracy")))))
    body = [kv_table(pairs, "summary-table")]
    nav = "".join(f'<li><a href="#{sid}">{text(SECTION_IDS[sid])}</a></li>'
                  for sid in present)
    if nav:
        body.append(f'<nav aria-label="sections"><ul>{nav}</ul></nav>')
    if report.get("pipeline"):
        steps = "".join(f"<li><code>{text(p)}</code></li>"
                        for p in _split_pipeline(str(report["pipeline"])))
        body.append(f'<h3>Pipeline</h3><ol id="pipeline">{steps}</ol>')
    if isinstance(opts, Mapping) and opts:
        body.append("<h3>Options</h3>" + kv_table(
            [(k, _Raw(text(_compact(opts[k]))) if isinstance(opts[k], (list, dict))
              else opts[k]) for k in sorted(opts)], "options"))
    return _section("summary", "".join(body))


def _layers(report: Mapping[str, Any]) -> str:
    rows = report["layers"]
    return _section("layers", (
        "<p>The spiking network, op by op (neuron populations highlighted); "
        "<em>origin</em> is the ONNX node it came from, <em>macs</em> the "
        "multiply-accumulates the op would spend in an ANN inference.</p>"
        + table(rows, tid="layers-table",
                row_class=lambda r: "pop" if r.get("kind") in _NEURON_KINDS else "")))


def _notes(report: Mapping[str, Any]) -> str:
    parts = []
    lam = report.get("lambda")
    if isinstance(lam, Mapping) and lam:
        parts.append("<h3>Normalization scales \u03bb</h3><p>Per neuron layer, the "
                     "activation scale its threshold stands for (one value, or one per "
                     "channel).</p>"
                     + table([{"layer": k, "lambda": v} for k, v in lam.items()],
                             headers={"lambda": "\u03bb"}, tid="lambda"))
    tune = report.get("tune")
    if isinstance(tune, Mapping) and isinstance(tune.get("candidates"), list):
        rows = [{"recipe": c.get("setting"),
                 **{f"agreement T={t}": v for t, v in (c.get("agreement") or {}).items()},
                 "chosen": "yes" if c.get("setting") == tune.get("chosen") else ""}
                for c in tune["candidates"] if isinstance(c, Mapping)]
        parts.append(
            f"<h3>Recipe selection (--tune auto)</h3><p>Every recipe tried, scored by its "
            f"agreement with the ANN's predictions on {text(tune.get('held_out_samples'))} "
            f"held-out calibration inputs; chosen: {text(tune.get('chosen'))}.</p>"
            + table(rows, tid="tune"))
    bc = report.get("bias_calibration")
    if isinstance(bc, Mapping):
        before = bc.get("mean_abs_rate_error_before") or {}
        parts.append(
            "<h3>Bias calibration</h3>"
            + kv_table([(_header_of(k), v) for k, v in bc.items()
                        if not isinstance(v, Mapping)], "bias-calibration")
            + (table([{"layer": k, "mean |rate error| before": v}
                      for k, v in before.items()]) if isinstance(before, Mapping) else ""))
    sched = report.get("ttfs_schedule")
    if isinstance(sched, list) and sched:
        parts.append("<h3>TTFS schedule</h3><p>The step at which each layer is released "
                     "and the window its spikes arrive in.</p>"
                     + table(sched, tid="ttfs-schedule"))
    off = report.get("offset_compensation")
    if isinstance(off, Mapping) and off:
        parts.append("<h3>TTFS offset compensation</h3>"
                     + table([{"layer": k, "max |compensation|": v} for k, v in off.items()],
                             tid="offset-compensation"))
    q = report.get("quantization")
    if isinstance(q, list) and q:
        parts.append("<h3>Fixed-point quantization</h3>" + table(q, tid="quantization"))
    return _section("notes", "".join(parts)) if parts else ""


def _coverage(report: Mapping[str, Any]) -> str:
    rows = report.get("coverage")
    if not isinstance(rows, list) or not rows:
        return ""
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    summary = ", ".join(f"{n} {text(s)}" for s, n in sorted(counts.items()))
    return _section("coverage", f"<details><summary>{len(rows)} ONNX nodes: {summary}"
                                f"</summary>{table(rows, tid='coverage-table')}</details>")


def _accuracy(evaluation: Mapping[str, Any] | None,
              diagnostics: Mapping[str, Any] | None) -> str:
    snn = list((evaluation or {}).get("snn") or [])
    per_step = list((diagnostics or {}).get("accuracy_per_step") or [])
    if not snn and not per_step:
        return ""
    ann = (evaluation or {}).get("ann_accuracy")
    series = []
    if per_step:
        tmax = (diagnostics or {}).get("timesteps", len(per_step))
        series.append({"label": f"accuracy after every step t of one run (T={num(tmax)})",
                       "points": [(t + 1, a) for t, a in enumerate(per_step)],
                       "cls": "c7 thin", "markers": False})
    if snn:
        series.append({"label": "SNN accuracy at T", "cls": "c0",
                       "points": [(r["timesteps"], r["accuracy"]) for r in snn
                                  if _is_num(r.get("timesteps")) and _is_num(r.get("accuracy"))]})
    hlines = [("ANN accuracy (onnxruntime)", float(ann), "c3")] if _is_num(ann) else []
    xs = [p[0] for s in series for p in s["points"]]
    xlog = bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 4
    ticks = sorted({int(r["timesteps"]) for r in snn if _is_num(r.get("timesteps"))})
    if per_step:
        ticks = sorted(set(ticks) | {2 ** k for k in range(0, 31) if 2 ** k <= len(per_step)}
                       | {len(per_step)})
    accs = [p[1] for s in series for p in s["points"]] + [h[1] for h in hlines]
    lo = max(0.0, min(accs) - 0.02) if accs else 0.0
    chart = line_chart("accuracy-chart", "accuracy vs time steps T", series,
                       xlabel="time steps T" + (" (log scale)" if xlog else ""),
                       ylabel="accuracy", xlog=xlog, yrange=(lo, 1.0),
                       xticks=ticks or None, hlines=hlines,
                       xfmt=lambda v: f"{v:g}", yfmt=lambda v: f"{v * 100:.4g}%")
    body = [_figure(chart, "SNN accuracy at each simulated length T (markers)"
                    + (", the ANN's accuracy (dashed)" if hlines else "")
                    + (" and the accuracy after every step of the longest run (thin)"
                       if per_step else "") + ".")]
    if snn:
        cols = ["timesteps", "accuracy"]
        extra = [k for r in snn for k in r if k not in cols]
        cols += list(dict.fromkeys(extra))
        rows = [dict(r) for r in snn]
        if _is_num(ann):
            for r in rows:
                if _is_num(r.get("accuracy")):
                    r["\u0394 vs ANN"] = r["accuracy"] - ann
            cols.append("\u0394 vs ANN")
        body.append(table(rows, cols, tid="accuracy-table",
                          formats={"accuracy": _pct,
                                   "\u0394 vs ANN": lambda v: num(v * 100, "+.2f") + " pp"}))
        if _is_num(ann):
            body.append(f"<p>ANN accuracy (onnxruntime): <strong>{_pct(ann)}</strong>"
                        + (f" on {num(evaluation['samples'])} samples"
                           if evaluation and "samples" in evaluation else "") + ".</p>")
    return _section("accuracy", "".join(body))


_RATE_HEADERS = {
    "firing_rate": "firing rate", "ann_rate": "ANN rate",
    "saturated_fraction": "saturated", "ann_above_threshold_fraction": "ANN above threshold",
    "dead_fraction": "dead", "dead_but_ann_active_fraction": "dead but ANN active",
    "correlation": "corr. with ANN", "rate_inference_loss": "\u03a9 (rate inference loss)"}


def _rates(diagnostics: Mapping[str, Any] | None) -> str:
    layers = list((diagnostics or {}).get("layers") or [])
    if not layers:
        return ""
    names = [r.get("layer") for r in layers]
    t = diagnostics.get("timesteps") if diagnostics else None
    body = []
    hists = [(i, r["rate_histogram"]) for i, r in enumerate(layers)
             if isinstance(r.get("rate_histogram"), Mapping)]
    for i, hg in hists:
        edges, counts = list(hg.get("edges") or []), list(hg.get("counts") or [])
        if len(edges) == len(counts) + 1 and counts:
            body.append(_figure(
                histogram(f"rates-hist-{i}", f"per-neuron firing rates of {visible(names[i])}",
                          edges, counts, xlabel="firing rate (spikes per input step)",
                          ylabel="neurons"),
                f"Per-neuron firing rates of <span class=\"name\">{text(names[i])}</span>."))
    chart = bar_chart(
        "rates-chart", "mean firing rate per layer vs the rate the ANN asks for", names,
        [("SNN firing rate", [_f(r.get("firing_rate")) for r in layers], "c0"),
         ("ANN rate (normalized activation)", [_f(r.get("ann_rate")) for r in layers], "c1"),
         ("saturated fraction", [_f(r.get("saturated_fraction")) for r in layers], "c3"),
         ("dead fraction", [_f(r.get("dead_fraction")) for r in layers], "c7")],
        xlabel="layer", ylabel="spikes per neuron per input step / fraction",
        yfmt=lambda v: f"{v + 0.0:.3g}")
    body.insert(0, _figure(chart, "Per layer: the mean firing rate of the spiking "
                "neurons next to the rate the ANN's normalized activation asks for, and "
                "the fractions of saturated and dead neurons"
                + (f" (T={num(t)}; rates per input step)" if t is not None else "") + "."))
    cols = ["layer", "neurons", *_RATE_HEADERS]
    rows = []
    for r in layers:
        row = {k: r.get(k) for k in cols}
        kc = [p for p in (r.get("k_curve") or []) if isinstance(p, Mapping)]
        if kc:
            row["K(T)"] = kc[-1].get("k")
            row["bound 2\u03a9/T"] = kc[-1].get("bound")
        rows.append(row)
    pct = {k: _pct for k in ("saturated_fraction", "ann_above_threshold_fraction",
                             "dead_fraction", "dead_but_ann_active_fraction")}
    three = {k: (lambda v: num(v, ".3f")) for k in ("firing_rate", "ann_rate", "correlation")}
    body.append(table(rows, [*cols, "K(T)", "bound 2\u03a9/T"], headers=_RATE_HEADERS,
                      formats={**pct, **three, "K(T)": lambda v: num(v, ".4f"),
                               "bound 2\u03a9/T": lambda v: num(v, ".4f")},
                      tid="rates-table"))
    if not hists:
        body.append("<p class=\"note\">The diagnostics hold per-layer means only, so the "
                    "chart shows one bar per layer rather than a histogram of per-neuron "
                    "rates.</p>")
    return _section("rates", "".join(body))


def _f(v: Any) -> float | None:
    return float(v) if _is_num(v) and math.isfinite(float(v)) else None


def _k_curve(diagnostics: Mapping[str, Any] | None) -> str:
    layers = list((diagnostics or {}).get("layers") or [])
    series = []
    for i, r in enumerate(layers):
        pts = [(p["t"], p["k"]) for p in (r.get("k_curve") or [])
               if isinstance(p, Mapping) and _is_num(p.get("t")) and _is_num(p.get("k"))
               and p["k"] > 0]
        if pts:
            series.append({"label": visible(r.get("layer")), "points": pts,
                           "cls": f"c{i % 8}"})
    if not series:
        return ""
    ticks = sorted({p[0] for s in series for p in s["points"]})
    chart = line_chart("k-curve-chart", "Ding's K curve per layer", series,
                       xlabel="time step t (log scale)", ylabel="K(t) (log scale)",
                       xlog=True, ylog=True, xticks=ticks, xfmt=lambda v: f"{v:g}",
                       yfmt=lambda v: f"{v:g}")
    return _section("k-curve", _figure(
        chart, "K(t) = \u03a3\u2016r(t) \u2212 r\u0302\u2016\u00b2 / "
               "\u03a3\u2016r\u0302\u2016\u00b2 per layer: how far the firing rates after t "
               "steps are from the rates the ANN asks for (falls towards 0 as the "
               "rates converge; bound 2\u03a9/t)."))


def _synops(report: Mapping[str, Any], evaluation: Mapping[str, Any] | None,
            diagnostics: Mapping[str, Any] | None) -> str:
    snn = [r for r in (evaluation or {}).get("snn") or [] if isinstance(r, Mapping)]
    macs = report.get("ann_macs")
    if not _is_num(macs) and diagnostics:
        macs = diagnostics.get("ann_macs_per_sample")
    if not snn and diagnostics and _is_num(diagnostics.get("synops_per_sample")):
        snn = [{"timesteps": diagnostics.get("timesteps"),
                "spikes_per_sample": diagnostics.get("spikes_per_sample"),
                "synops_per_sample": diagnostics.get("synops_per_sample")}]
    snn = [r for r in snn if _is_num(r.get("synops_per_sample"))]
    if not snn:
        return ""
    rows = []
    for r in snn:
        row = {"timesteps": r.get("timesteps"), "spikes_per_sample": r.get("spikes_per_sample"),
               "synops_per_sample": r.get("synops_per_sample")}
        if _is_num(macs):
            row["ann_macs"] = macs
            row["SynOps / MACs"] = (r["synops_per_sample"] / macs) if macs else None
        rows.append(row)
    cats = [f"T={num(r.get('timesteps'))}" for r in snn]
    hl = [("ANN MACs per sample", float(macs), "c3")] if _is_num(macs) else []
    body = [
        table(rows, tid="synops-table",
              formats={"SynOps / MACs": lambda v: num(v, ".2f") + "\u00d7"}),
        _figure(bar_chart("synops-chart", "SynOps per sample at each T vs the ANN's MACs",
                          cats, [("SynOps per sample", [_f(r["synops_per_sample"])
                                                        for r in snn], "c0")],
                          xlabel="simulated length", ylabel="operations per sample",
                          hlines=hl),
                "SynOps (synaptic accumulates: one per spike per target) per sample at each "
                "T" + (", against the multiply-accumulates of one ANN inference (dashed)"
                       if hl else "") + "."),
        _figure(bar_chart("spikes-chart", "spikes per sample at each T", cats,
                          [("spikes per sample", [_f(r.get("spikes_per_sample"))
                                                  for r in snn], "c1")],
                          xlabel="simulated length", ylabel="spikes per sample"),
                "Spikes per sample (all layers) at each T.")]
    return _section("synops", "".join(body))


def _ttfs(evaluation: Mapping[str, Any] | None) -> str:
    tt = (evaluation or {}).get("ttfs")
    if not isinstance(tt, Mapping):
        return ""
    body = []
    if "decision_steps" in tt:
        body.append(f"<p>Decision after <strong>{num(tt['decision_steps'])}</strong> "
                    "steps; at most one spike per neuron.</p>")
    layers = [r for r in tt.get("layers") or [] if isinstance(r, Mapping)]
    if layers:
        body.append(table(layers, tid="ttfs-table"))
        body.append(_figure(bar_chart(
            "ttfs-chart", "mean spike step per layer", [r.get("layer") for r in layers],
            [("release step", [_f(r.get("release_step")) for r in layers], "c7"),
             ("mean spike step", [_f(r.get("mean_spike_step")) for r in layers], "c0"),
             ("last spike step", [_f(r.get("last_spike_step")) for r in layers], "c1")],
            xlabel="layer", ylabel="time step"),
            "When each layer is released and when its neurons spike."))
    return _section("ttfs", "".join(body)) if body else ""


def _energy(diagnostics: Mapping[str, Any] | None) -> str:
    e = (diagnostics or {}).get("energy")
    if not isinstance(e, Mapping):
        return ""
    d = diagnostics or {}
    t = d.get("timesteps")
    body = [f'<p>An <strong>estimate</strong> per sample from the cost table '
            f'<strong id="cost-table-name">{text(e.get("cost_table"))}</strong> '
            f'(source: <span id="cost-table-source">{text(e.get("source"))}</span>)'
            + (f", at T={num(t)}" if t is not None else "") + ". Every number here is an "
            "estimate of arithmetic energy only (no memory traffic).</p>",
            "<h3>Cost table</h3>",
            table([{"operation": "SynOp (one accumulate per spike per target)",
                    "pJ": e.get("synop_pJ"), "count per sample": d.get("synops_per_sample")},
                   {"operation": "neuron update (one membrane add per neuron per step)",
                    "pJ": e.get("neuron_update_pJ"),
                    "count per sample": d.get("neuron_updates_per_sample")},
                   {"operation": "ANN MAC (multiply + add)", "pJ": e.get("mac_pJ"),
                    "count per sample": d.get("ann_macs_per_sample")}],
                  tid="cost-table")]
    snn, ann = _f(e.get("snn_joules_per_sample")), _f(e.get("ann_joules_per_sample"))

    def nj(v: float) -> str:
        return num(v * 1e9, ",.3f") + " nJ"

    pairs: list[tuple[str, Any]] = []
    if snn is not None:
        pairs.append(("SNN per sample", _Raw(nj(snn))))
    if ann is not None:
        pairs.append(("ANN per sample", _Raw(nj(ann))))
    if _is_num(e.get("snn_over_ann")):
        pairs.append(("SNN / ANN", _Raw(num(e["snn_over_ann"], ".3f") + "\u00d7")))
    if _is_num(e.get("spike_model_watts_per_alpha")):
        pairs.append(("spike model (Cao/Ding: \u03b1 J per spike, 1 ms steps)",
                      _Raw(f"P = {num(e['spike_model_watts_per_alpha'], '.4g')} \u00d7 "
                           "\u03b1 W")))
    body.append("<h3>Estimate</h3>" + kv_table(pairs, "energy-table"))
    if snn is not None and ann is not None:
        body.append(_figure(bar_chart(
            "energy-chart", "energy per sample: SNN vs ANN", ["SNN", "ANN"],
            [("energy per sample (nJ)", [snn * 1e9, ann * 1e9], "c0")],
            xlabel="", ylabel="nJ per sample", vfmt=lambda v: num(v, ",.3f") + " nJ"),
            "SNN: SynOps \u00d7 SynOp cost + neuron updates \u00d7 update cost; ANN: MACs "
            "\u00d7 MAC cost."))
    return _section("energy", "".join(body))


_C_RAM = (("ram_state_bytes", "neuron state", "c0"),
          ("ram_spike_buffer_bytes", "spike buffers", "c1"),
          ("ram_current_buffer_bytes", "current buffers", "c2"),
          ("ram_other_bytes", "input, per-input constants, readout", "c7"))


def _c_footprint(report: Mapping[str, Any]) -> str:
    t = report.get("c_footprint")
    if not isinstance(t, Mapping):
        return ""

    def b(v: Any) -> str:
        return f"{num(v)} B"

    pairs: list[tuple[str, Any]] = [
        ("arithmetic", t.get("arithmetic")),
        ("flash: const weights", _Raw(b(t.get("flash_weights_bytes"))))]
    code = t.get("flash_code_bytes")
    pairs.append(("flash: code (Cortex-M4)", _Raw(b(code)) if _is_num(code) else
                  _Raw("not measured (arm-none-eabi-gcc not found)")))
    pairs.append(("RAM: context struct", _Raw(b(t.get("ram_ctx_bytes")))))
    for key, label, _ in _C_RAM:
        if key in t:
            pairs.append((f"\u2003RAM: {label}", _Raw(b(t[key]))))
    body = ["<p>Flash = const weights (and code when measured); RAM = the context struct "
            "(static; no heap).</p>", kv_table(pairs, "c-footprint-table")]
    arm = t.get("cortex_m4")
    if isinstance(arm, Mapping):
        body.append("<h3>Cortex-M4 object sizes</h3>" + kv_table(
            [(_header_of(k), arm[k]) for k in sorted(arm)], "cortex-m4"))
    parts = [(label, _f(t.get(key)), cls) for key, label, cls in _C_RAM]
    parts = [p for p in parts if p[1]]
    if parts:
        total = sum(v for _, v, _ in parts)
        out = _svg_open("c-ram-chart", _W, 40 + len(parts) * _LEGEND_ROW + 8,
                        "RAM of the context struct by use")
        x = float(_L)
        span = _W - _L - _R
        for label, v, cls in parts:
            w = span * v / total
            out.append(f'<rect class="bar {cls}" x="{_c(x)}" y="8" width="{_c(w)}" '
                       f'height="20"><title>{text(label)}: {num(v)} B</title></rect>')
            x += w
        out.append('<text class="tick" x="8" y="22">RAM</text>')
        _legend(out, [(f"{label}: {num(v)} B ({v / total:.1%})", cls, "bar")
                      for label, v, cls in parts], 48)
        out.append("</svg>")
        body.append(_figure("".join(out), "The context struct's RAM by use."))
    rows = report.get("c_footprint_layers")
    if isinstance(rows, list) and rows:
        body.append("<h3>Per layer</h3>" + table(rows, tid="c-footprint-layers"))
    return _section("c-footprint", "".join(body))


_PLACE_LABELS = {
    "target": "target", "target_status": "target description", "rates": "rates",
    "cores_used": "cores used", "cores_lower_bound": "cores (lower bound)",
    "cores_over_bound": "cores / lower bound", "chips_used": "chips used",
    "slices": "slices", "neurons": "neurons", "synapses": "synapses",
    "total_traffic": "traffic (messages per step)",
    "hop_traffic": "hop-weighted traffic", "hop_traffic_in_order":
    "hop-weighted traffic of in-order placement", "hop_traffic_vs_in_order":
    "hop traffic vs in-order", "max_link_traffic": "max link traffic",
    "mean_hops": "mean hops", "violations": "violations", "seed": "seed"}


def _placement(report: Mapping[str, Any]) -> str:
    s = report.get("placement")
    rows = report.get("placement_layers")
    if not isinstance(s, Mapping) and not (isinstance(rows, list) and rows):
        return ""
    body = []
    if isinstance(s, Mapping):
        keys = [k for k in _PLACE_LABELS if k in s] + sorted(k for k in s
                                                             if k not in _PLACE_LABELS)
        pairs: list[tuple[str, Any]] = []
        for k in keys:
            v = s[k]
            if isinstance(v, Mapping):
                v = _Raw(", ".join(f"{text(a)}: {num(v[a])}" for a in sorted(v)))
            pairs.append((_PLACE_LABELS.get(k, _header_of(k)), v))
        viol = s.get("violations")
        verdict = ("fits: no core exceeds a limit" if viol == 0 else
                   f"{num(viol)} core(s) exceed a limit" if _is_num(viol) else "")
        if verdict:
            body.append(f'<p class="{"ok" if viol == 0 else "bad"}">{text(verdict)}.</p>')
        body.append(kv_table(pairs, "placement-summary"))
    if isinstance(rows, list) and rows:
        body.append("<h3>Per layer</h3>" + table(rows, tid="placement-layers"))
        pct = [_f(r.get("max_binding_pct")) for r in rows]
        if any(v is not None for v in pct):
            body.append(_figure(bar_chart(
                "placement-chart", "use of the binding core resource per layer",
                [r.get("layer") for r in rows], [("max binding use (%)", pct, "c0")],
                xlabel="layer", ylabel="% of the core's limit", yrange=(0.0, 100.0),
                vfmt=lambda v: num(v, ".1f") + "%"),
                "Per layer, the fullest core's use of its binding resource."))
    return _section("placement", "".join(body))


def _verdicts(diagnostics: Mapping[str, Any] | None) -> str:
    layers = [r for r in (diagnostics or {}).get("layers") or [] if isinstance(r, Mapping)]
    if not layers or not any("verdict" in r for r in layers):
        return ""
    bad = [r for r in layers if r.get("verdict", "ok") != "ok"]
    if not bad:
        return _section("verdicts", '<p class="ok">Every layer converts well: no '
                                    "saturation, under-firing or slow convergence found."
                                    "</p>")
    items = "".join(f'<li><span class="name">{text(r.get("layer"))}</span>: '
                    f'{text(_strip_name(r))}</li>' for r in bad)
    return _section("verdicts", f'<ul class="bad" id="verdict-list">{items}</ul>')


def _strip_name(r: Mapping[str, Any]) -> str:
    """The verdict without its leading 'layer: ' (the list item names the layer)."""
    v, name = str(r.get("verdict")), f"{r.get('layer')}: "
    return v[len(name):] if v.startswith(name) else v


def _other(report: Mapping[str, Any]) -> str:
    rest = sorted(k for k in report if k not in _KNOWN_KEYS)
    if not rest:
        return ""
    items = "".join(f"<dt>{text(k)}</dt><dd><pre>{text(_pretty(report[k]))}</pre></dd>"
                    for k in rest)
    return _section("other", f"<dl>{items}</dl>")


def _pretty(v: Any) -> str:
    return json.dumps(v, sort_keys=True, indent=1, ensure_ascii=False, default=str)


def _sections(report: Mapping[str, Any], evaluation: Mapping[str, Any] | None,
              diagnostics: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [
        ("layers", _layers(report) if report.get("layers") else ""),
        ("notes", _notes(report)),
        ("coverage", _coverage(report)),
        ("accuracy", _accuracy(evaluation, diagnostics)),
        ("rates", _rates(diagnostics)),
        ("k-curve", _k_curve(diagnostics)),
        ("synops", _synops(report, evaluation, diagnostics)),
        ("ttfs", _ttfs(evaluation)),
        ("energy", _energy(diagnostics)),
        ("c-footprint", _c_footprint(report)),
        ("placement", _placement(report)),
        ("verdicts", _verdicts(diagnostics)),
        ("other", _other(report)),
    ]


# ------------------------------------------------------------------ page ------------------
_CSS = """
:root{color-scheme:light;--fg:#1b1f23;--muted:#586069;--line:#d0d7de;--bg:#fff;--alt:#f6f8fa}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;padding:16px 24px 48px;max-width:1100px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:32px 0 8px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:15px;margin:18px 0 6px}
section{margin-bottom:8px}p{margin:6px 0}.note{color:var(--muted)}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--alt);padding:6px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:var(--alt);position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name,.name{overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px}
tr.pop td{background:#eef6ff}
table.kv th{background:var(--alt);font-weight:600;white-space:nowrap}
#pipeline{margin:4px 0;padding-left:28px}#pipeline code{overflow-wrap:anywhere}
nav ul{display:flex;flex-wrap:wrap;gap:4px 14px;list-style:none;padding:0;margin:10px 0}
figure{margin:8px 0 14px;max-width:100%;overflow-x:auto}
figcaption{color:var(--muted);font-size:12.5px;max-width:720px}
svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}
svg .grid{stroke:#e6e9ed;stroke-width:1}svg .axis,svg .tickmark{stroke:#57606a;fill:none}
svg .tick{font-size:11px;fill:#57606a}svg .label{font-size:12px;fill:#24292f}
svg .legend{font-size:12px;fill:#24292f}
svg .line{fill:none;stroke:var(--c);stroke-width:2}svg .line.thin{stroke-width:1;
opacity:.7}svg .dashed{stroke-dasharray:6 4;stroke-width:1.5}
svg .dot,svg .bar{fill:var(--c);stroke:none}
.c0{--c:#1f6feb}.c1{--c:#e36209}.c2{--c:#2da44e}.c3{--c:#cf222e}.c4{--c:#8250df}
.c5{--c:#9a6700}.c6{--c:#bf3989}.c7{--c:#8c959f}
.ok{color:#1a7f37}.bad{color:#a40e26}
details>summary{cursor:pointer}
@media print{nav{display:none}thead th{position:static}}
"""


def _finite(v: Any) -> Any:
    """v with every NaN / Inf float replaced by None (drawn and printed as missing)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def render(report: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None,
           diagnostics: Mapping[str, Any] | None = None) -> bytes:
    """The HTML page (UTF-8 bytes) for a compile's report.json, optionally with the JSON
    of `snnc eval --json` (evaluation) and of `--diagnostics` (diagnostics). Numbers that
    are not finite (an evaluation on broken data) are shown as missing."""
    report, evaluation, diagnostics = (_finite(report), _finite(evaluation),
                                       _finite(diagnostics))
    sections = _sections(report, evaluation, diagnostics)
    source = report.get("source") or "model"
    head = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta name="generator" content="snnc {text(report.get("snnc_version", ""))}">'
        f"<title>snnc report: {text(source)}</title>"
        f"<style>{_CSS}</style></head><body>")
    title = (f'<header><h1>snnc report: <span class="name">{text(source)}</span></h1>'
             "</header>")
    present = [sid for sid, h in sections if h]
    body = [_summary(report, evaluation, present)] + [h for _, h in sections if h]
    page = head + title + "<main>" + "\n".join(body) + "</main></body></html>\n"
    return page.encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------ inputs ----------------
#: columns of the place backend's layers.csv that hold names or words, never numbers
_CSV_TEXT = frozenset({"layer", "population", "kind", "shape", "tile", "max_binding"})


def _csv_rows(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for r in csv.DictReader(io.StringIO(data.decode("utf-8"))):
        row: dict[str, Any] = {}
        for k, v in r.items():
            row[k] = v if k in _CSV_TEXT else _parse_number(v)
        rows.append(row)
    return rows


def _parse_number(v: str) -> Any:
    if v == "":
        return None
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def with_outputs(report: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, Any]:
    """A copy of report with what the backends wrote beside it (OUT-relative paths ->
    bytes, e.g. a compile's files or read_outputs()): c/footprint.json's per-layer rows
    as "c_footprint_layers", place/summary.json as "placement" and place/layers.csv as
    "placement_layers"."""
    out = dict(report)
    fp = files.get("c/footprint.json")
    if fp is not None:
        layers = json.loads(fp).get("layers")
        if isinstance(layers, list):
            out["c_footprint_layers"] = layers
    summary = files.get("place/summary.json")
    if summary is not None:
        out["placement"] = json.loads(summary)
    layers_csv = files.get("place/layers.csv")
    if layers_csv is not None:
        out["placement_layers"] = _csv_rows(layers_csv)
    return out


def read_outputs(out_dir: str | Path) -> dict[str, bytes]:
    """The OUTPUT_FILES that exist in a compiled OUT directory."""
    out = Path(out_dir)
    return {name: (out / name).read_bytes() for name in OUTPUT_FILES
            if (out / name).is_file()}
