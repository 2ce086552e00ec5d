"""A pipeline that stalls: a valid bit per register stage, each stage taking the element
before it when it is empty or its own element moves on, so a consumer that is not ready
holds the pipeline without losing an element (and without bubbles: a stage behind an
empty one keeps moving).  The stages that use it (Embed, RoPE) name their stages in
`stages/latency.py`; their payload registers (`hold`, MatVec's too) load with `moves[i]`.

    pipe = Stalled(("pick", "shift"), out_free)   # out_free: the output can take an element
    enter = source_valid & pipe.free[0]           # an element enters stage 0
    moves = pipe.feed(enter)                      # moves[i]: stage i loads; moves[-1]: the last
                                                  # stage's element leaves into the output
"""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import ctrl_reg, data_reg, load_when


def hold(value, name: str, en):
    """value registered, of its own kind (SInt/UInt/Bits/Bit): loading when en, or (en None) every
    cycle.  An enable lets a simulator skip the stage's arithmetic in idle cycles; MatVec's first
    stage loads every cycle, so W.ready's fan-out reaches no clock enables."""
    T = m.Bit if isinstance(value, m.Digital) else (
        m.SInt if isinstance(value, m.SInt) else m.UInt if isinstance(value, m.UInt) else m.Bits)[len(value)]
    r = data_reg(T, name, enable=en is not None)
    if en is None:
        r.I @= value
    else:
        load_when(r, en, value)
    return r.O


class Stalled:
    def __init__(self, stages, out_free):
        self.valid = [ctrl_reg(m.Bit, f"{s}_valid") for s in stages]
        free = [out_free]
        for v in reversed(self.valid):
            free.insert(0, ~v.O | free[0])
        self.free = free            # free[i]: stage i can take an element this cycle (free[-1]: the output)
        self.moves = None

    def feed(self, enter):
        """Wire the valid bits for `enter` (an element enters stage 0; only when free[0])."""
        moves = [enter] + [v.O & f for v, f in zip(self.valid, self.free[1:])]
        for i, v in enumerate(self.valid):
            v.I @= moves[i] | (v.O & ~self.free[i + 1])
        return moves

    def count(self, p, bits: int, per: int = 1) -> str:
        """Formal: the elements in the stages, `bits` wide (each stage holds `per`)."""
        return " + ".join(f"({p.sig(v.O)} ? {bits}'d{per} : {bits}'d0)" for v in self.valid)
