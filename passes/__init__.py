"""IR-to-IR passes, one per module, and the explicit registry PASSES.

A pass is a frozen dataclass with a kebab-case `name`, its options as fields, the facts it
requires / establishes / invalidates, and `run(graph, ctx) -> graph` (never mutating its
input). Its docstring gives the equation and the METHODS.md section; choices are marked
`Decision:`.
"""
from __future__ import annotations

from snnc.passes.base import Pass, PassContext
from snnc.passes.calibrate_bias import CalibrateBias
from snnc.passes.convert_to_snn import ConvertToSnn
from snnc.passes.finite_input import FiniteInput
from snnc.passes.fold_affine import FoldAffine
from snnc.passes.fold_batchnorm import FoldBatchNorm
from snnc.passes.normalize import Normalize
from snnc.passes.quantize import Quantize  # C backend (issue 4)
from snnc.passes.relu_before_maxpool import ReluBeforeMaxPool
from snnc.passes.shift_bias import ShiftBias
from snnc.passes.signed_neurons import SignedNeurons
from snnc.passes.ttfs import ConvertToTtfs, NegateWeights, OffsetCompensation, TtfsSchedule

PASSES: dict[str, type[Pass]] = {
    p.name: p for p in (FoldBatchNorm, FoldAffine, ReluBeforeMaxPool, Normalize, ShiftBias,
                       ConvertToSnn, FiniteInput, SignedNeurons, CalibrateBias, Quantize,
                       ConvertToTtfs,
                       OffsetCompensation, TtfsSchedule, NegateWeights)
}

__all__ = ["PASSES", "CalibrateBias", "ConvertToSnn", "ConvertToTtfs", "FiniteInput",
           "FoldAffine", "FoldBatchNorm", "NegateWeights", "Normalize", "OffsetCompensation",
           "Pass", "PassContext", "Quantize", "ReluBeforeMaxPool", "ShiftBias", "SignedNeurons",
           "TtfsSchedule"]
