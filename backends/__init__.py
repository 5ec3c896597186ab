"""Backends: turn a (spiking) IR graph into files in OUT/.

A backend declares the IR facts it requires and writes {relative path: bytes}; the driver
writes them atomically. Registry: BACKENDS.
"""
from __future__ import annotations

from snnc.backends.c import CBackend  # C backend (issue 4)
from snnc.backends.nir import NirBackend
from snnc.backends.place import PlaceBackend
from snnc.backends.sim import SimBackend

BACKENDS = {"sim": SimBackend, "c": CBackend, "place": PlaceBackend, "nir": NirBackend}

__all__ = ["BACKENDS", "CBackend", "NirBackend", "PlaceBackend", "SimBackend"]
