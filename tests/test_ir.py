"""IR: text form round trip, disk form round trip, verifier errors."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import small_cnn
from snnc.driver import Options, convert
from snnc.frontend import import_model
from snnc.ir import ops as O
from snnc.ir.errors import SnncError
from snnc.ir.graph import Graph, Value
from snnc.ir.serialize import graph_files, load_graph
from snnc.ir.text import parse_graph, print_graph
from snnc.ir.verify import verify


def _graphs():
    m = small_cnn(residual=True)
    ann = import_model(m).graph
    _, snn, _ = convert(m, Options(), structure_only=True)
    return {"ann": ann, "snn": snn}


@pytest.mark.parametrize("which", ["ann", "snn"])
def test_text_round_trip(which):
    g = _graphs()[which]
    text = print_graph(g)
    g2 = parse_graph(text, g.params)
    assert print_graph(g2) == text
    assert [type(o) for o in g2.ops] == [type(o) for o in g.ops]
    assert g2.ops == g.ops


def test_text_quotes_hostile_names():
    g = Graph(inputs=['in put"\n'], values={'in put"\n': Value('in put"\n', (4,))})
    g.params["w@ %x"] = np.ones((3, 4), np.float32)
    g.add_op(O.Dense(name="d\"=", out="y y", origin="node\n1", x='in put"\n', weight="w@ %x"))
    g.outputs = ["y y"]
    text = print_graph(g)
    assert len(text.splitlines()) == 7  # newlines in names stay escaped
    assert print_graph(parse_graph(text, g.params)) == text


def test_disk_round_trip_is_deterministic(tmp_path):
    g = _graphs()["snn"]
    files = graph_files(g)
    assert files == graph_files(g)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    g2 = load_graph(tmp_path)
    assert print_graph(g2) == print_graph(g)
    for k in g.params:
        if k in g2.params:
            np.testing.assert_array_equal(g.params[k], g2.params[k])


def test_disk_form_rejects_other_versions(tmp_path):
    import json

    files = graph_files(_graphs()["ann"])
    meta = json.loads(files["graph.json"])
    meta["version"] = 99
    (tmp_path / "graph.json").write_text(json.dumps(meta))
    (tmp_path / "params.npz").write_bytes(files["params.npz"])
    with pytest.raises(SnncError, match="version 99"):
        load_graph(tmp_path)


def test_verifier_names_the_op():
    g = _graphs()["ann"]
    bad = g.copy()
    bad.ops = list(reversed(bad.ops))
    with pytest.raises(SnncError, match="before it is defined"):
        verify(bad)
    bad = g.copy()
    w = bad.ops[0].weight
    bad.params[w] = np.full_like(bad.params[w], np.nan)
    with pytest.raises(SnncError, match="NaN") as e:
        verify(bad)
    assert e.value.node == "conv1"


def test_shape_errors_name_the_origin():
    g = Graph(inputs=["x"], values={"x": Value("x", (3, 8, 8))})
    g.params["w"] = np.ones((4, 2, 3, 3), np.float32)
    with pytest.raises(SnncError) as e:
        g.add_op(O.Conv(name="c", out="y", origin="onnx_conv", x="x", weight="w"))
    assert e.value.node == "onnx_conv" and "channels" in str(e.value)
