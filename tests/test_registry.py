"""Registries stay complete: a new op kind needs a kernel, an importer path and a doc."""
from __future__ import annotations

from snnc.backends.sim import runtime
from snnc.frontend import IMPORTERS
from snnc.ir.ops import OPS
from snnc.passes import PASSES


def test_every_op_kind_has_one_kernel_table_entry():
    """KERNELS[kind]: ANN-level kinds have a float form; spiking kinds a step form (one
    for both arithmetics) and a rate view; nothing else is in the table."""
    assert set(runtime.KERNELS) == set(OPS)
    for kind, cls in OPS.items():
        k = runtime.KERNELS[kind]
        if cls.spiking:
            assert k.step is not None and k.rate is not None, kind
            assert k.float is None and k.fixed is None, kind
        else:
            assert k.float is not None and k.step is None, kind


def test_fixed_point_forms_cover_what_quantize_and_the_c_backend_handle():
    """Every non-spiking kind that the fixed-point lowering keeps (HANDLED_ATTRS) has an
    integer kernel: the simulator can run whatever the C backend is given."""
    from snnc.ir.semantics import HANDLED_ATTRS

    for kind in HANDLED_ATTRS:
        if not OPS[kind].spiking:
            assert runtime.KERNELS[kind].fixed is not None, kind


def test_every_ann_op_kind_is_produced_by_an_importer_or_a_pass():
    produced_by_import = {"conv", "dense", "batchnorm", "affine", "relu", "clip", "maxpool",
                          "avgpool", "add", "concat", "flatten", "reshape", "pad", "softmax",
                          "ttfsgate"}  # the fused G(x) chain (frontend.match_gate)
    ann = {k for k, c in OPS.items() if not c.spiking}
    assert ann == produced_by_import
    assert len(IMPORTERS) >= 20


def test_passes_are_documented():
    for name, cls in PASSES.items():
        assert cls.name == name
        mod = __import__(cls.__module__, fromlist=["x"])
        assert len(mod.__doc__ or "") > 200, name  # states the equation
        assert "METHODS" in (mod.__doc__ or "") or name in ("fold-affine",
                                                             "relu-before-maxpool"), name


def test_pipeline_options_round_trip_with_their_types():
    """Every pass with its default options prints as a pipeline string that parses back
    to the same pass; a boolean option reads 'False' as false (bool('False') is True)."""
    import pytest
    from snnc.ir.errors import SnncError
    from snnc.passmanager import parse_pipeline, pipeline_spec

    for cls in PASSES.values():
        p = cls()
        assert parse_pipeline(pipeline_spec([p])) == [p], cls.name
    assert parse_pipeline("convert-to-ttfs{gated=False}")[0].gated is False
    assert parse_pipeline("convert-to-ttfs{gated=true}")[0].gated is True
    assert parse_pipeline("convert-to-snn{v_init=0.5}")[0].v_init == 0.5
    with pytest.raises(SnncError, match="bad value 'maybe'"):
        parse_pipeline("convert-to-ttfs{gated=maybe}")
