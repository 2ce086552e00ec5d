"""Rows of the design table for the datapath stages (see designs.py).

Each module of `magma_llama.stages` that has a `designs()` function returns its own
rows (proof sizes, emitted sizes, mutants), written next to the generator they
describe; this module only collects them, so adding a stage touches one file."""

from __future__ import annotations

import importlib
import pkgutil

import magma_llama.stages
from magma_llama.formal.designs import register


def stage_modules():
    """The stage modules, in name order."""
    for info in sorted(pkgutil.iter_modules(magma_llama.stages.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"magma_llama.stages.{info.name}")


for _mod in stage_modules():
    for _design in getattr(_mod, "designs", lambda: [])():
        register(_design)
