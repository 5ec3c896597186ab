"""Registries stay complete: a new op kind needs a kernel, an importer path and a doc."""
from __future__ import annotations

from snnc.backends.sim import runtime
from snnc.frontend import IMPORTERS
from snnc.ir.ops import OPS
from snnc.passes import PASSES


def test_every_op_kind_has_a_simulator_kernel():
    for kind, cls in OPS.items():
        if cls.spiking:
            assert kind in runtime.SPIKING_KINDS, kind
        else:
            assert kind in runtime.ANN_KERNELS, kind
    assert set(runtime.ANN_KERNELS) | set(runtime.SPIKING_KINDS) == set(OPS)


def test_every_ann_op_kind_is_produced_by_an_importer_or_a_pass():
    produced_by_import = {"conv", "dense", "batchnorm", "affine", "relu", "clip", "maxpool",
                          "avgpool", "add", "concat", "flatten", "reshape", "pad", "softmax"}
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
