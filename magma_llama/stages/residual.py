"""Residual: O = sat32(A + B), element by element (`golden.stages.residual`).

Ports (ready/valid streams, CLK and a synchronous RESET):
- `A`, `B` (in): Q12.20 activations, one per beat, the two addends of one element;
- `O` (out): their saturated sum, one beat per element pair.

A `streams.ZipWith` (a join with a register slice behind it): both inputs are taken in
the same cycle, when both are valid and `O` is free (empty or being read), and the sum
lands in the `O` register.  One beat per cycle; latency one cycle.  The stage has no
vector length: the decoder sends `dim` pairs per token.  The formal build is ZipWith's
(a xor payload, with the same control code)."""

from __future__ import annotations

import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.stages import units
from magma_llama.streams._base import check_mutant
from magma_llama.streams.zip_with import MUTANTS as ZIP_MUTANTS, ZipWith

ACT = m.Bits[ACT_BITS]

MUTANTS = ZIP_MUTANTS      # the control is ZipWith's: "eager" and "overwrite"


def saturated_sum(a, b):
    """sat32(a + b) of two Q12.20 words (33-bit sum, then the shared saturation unit)."""
    s = m.sext_to(m.sint(a), ACT_BITS + 1) + m.sext_to(m.sint(b), ACT_BITS + 1)
    return units.sat(s, ACT_BITS)


class Residual(ZipWith):
    def __init__(self, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "residual")
        name = "Residual" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        super().__init__(ACT, lambda a, b: m.bits(saturated_sum(a, b)), ports=("A", "B", "O"),
                         name=name, mutant=mutant, formal=formal)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("residual", "Residual adder sat32(a + b) (emit) / ZipWith's xor payload (proof): "
                      "a join and the O register, one beat a cycle",
                      Residual, (), (), MUTANTS, depth=4)]
