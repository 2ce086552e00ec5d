"""Pipelines: `Stalled`, `Cuts` and `Credited`.

A pipeline that stalls: a valid bit per register stage, each stage taking the element
before it when it is empty or its own element moves on, so a consumer that is not ready
holds the pipeline without losing an element (and without bubbles: a stage behind an
empty one keeps moving).  The stages that use it (Embed, RoPE) name their stages in
`stages/latency.py`; their payload registers (`hold`, MatVec's too) load with `moves[i]`.

    pipe = Stalled(("pick", "shift"), out_free)   # out_free: the output can take an element
    enter = source_valid & pipe.free[0]           # an element enters stage 0
    moves = pipe.feed(enter)                      # moves[i]: stage i loads; moves[-1]: the last
                                                  # stage's element leaves into the output

`Cuts` puts a datapath's registers at named points (the function units of stages/units.py
take one as `cut`), in the order a `stages/latency.py` table lists them.  `Flowing` is a
pipeline that never stalls inside (a stage loads when the one before held an element), for a
consumer that always takes the result (the Sampler's passes); `Credited` puts a FIFO behind
one, which credits keep from overflowing, so no ready runs back through the stages.
"""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import ctrl_reg, data_reg, load_when
from magma_llama.streams.types import clog2


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
        return _count(p, self.valid, bits, per)


def _count(p, valid, bits: int, per: int = 1) -> str:
    """Formal: the elements in stages with these valid registers, `bits` wide (`per` a stage)."""
    return " + ".join(f"({p.sig(v.O)} ? {bits}'d{per} : {bits}'d0)" for v in valid)


class Cuts:
    """The registers of a datapath at its named cuts: `cut(name, *values)` registers the values
    (and every value kept alive across the cut, see `keep`) with the load enable of stage k,
    the k-th name of `names`, which must come in that order; it returns the registered values
    (one value alone).  `moves` (one enable per stage, e.g. Stalled.feed's) or None: load every
    cycle.  `prefix` keeps the register names apart when one module holds several."""

    def __init__(self, names, moves=None, prefix: str = ""):
        self.names, self.moves, self.prefix = tuple(names), moves, prefix
        self.k = 0
        self.live = []

    def __call__(self, name: str, *values):
        if self.k >= len(self.names) or self.names[self.k] != name:
            want = self.names[self.k] if self.k < len(self.names) else "(the end)"
            raise ValueError(f"pipeline cut {name!r} where the table has {want!r} (stage {self.k})")
        en = None if self.moves is None else self.moves[self.k]
        tag = f"cut_{self.prefix}{name}"          # formal/lint_waivers.vlt knows the cut_ registers
        out = tuple(hold(v, f"{tag}_{i}", en) for i, v in enumerate(values))
        for j, frame in enumerate(self.live):
            frame[:] = [hold(v, f"{tag}_k{j}_{i}", en) for i, v in enumerate(frame)]
        self.k += 1
        return out[0] if len(out) == 1 else out

    def keep(self, *values) -> list:
        """Values needed after the cuts to come: each cut registers them too; read them back with
        `release` (the frame's list is updated in place, frame[i] being the delayed value)."""
        frame = list(values)
        self.live.append(frame)
        return frame

    def release(self, frame) -> tuple:
        self.live = [f for f in self.live if f is not frame]
        return tuple(frame)

    def done(self) -> None:
        if self.k != len(self.names) or self.live:
            raise ValueError(f"pipeline ended at stage {self.k} of {len(self.names)} ({len(self.live)} kept)")


def credited_depth(stages: int) -> int:
    """Credited's FIFO: the first power of two holding every element in flight plus two (one
    result a cycle through a stall: the credit comes back a cycle after the FIFO is read)."""
    return 1 << (stages + 2).bit_length()


class Flowing:
    """Register stages that never stall: stage k loads when stage k - 1 held an element (stage
    0 when `enter`), so an element leaves the last stage `len(stages)` cycles after it entered.
    `feed(enter)` returns the `Cuts` of the stages; `valid[k]`: stage k holds an element;
    `busy`: one of them does."""

    def __init__(self, stages, prefix: str = ""):
        self.stages, self.prefix = tuple(stages), prefix
        self.valid = [ctrl_reg(m.Bit, f"{prefix}{s}_valid") for s in self.stages]
        self.out_valid = self.valid[-1].O
        busy = self.valid[0].O
        for v in self.valid[1:]:
            busy = busy | v.O
        self.busy = busy

    def feed(self, enter) -> Cuts:
        self.valid[0].I @= enter
        for a, b in zip(self.valid, self.valid[1:]):
            b.I @= a.O
        return Cuts(self.stages, [enter] + [v.O for v in self.valid[:-1]], self.prefix)

    def count(self, p, bits: int) -> str:
        """Formal: the elements in the stages, `bits` wide."""
        return _count(p, self.valid, bits)


class Credited:
    """A pipeline of `stages` register stages that never stalls, then a FIFO of results.

    `ready` (a flip-flop) says an element may enter this cycle: the elements owed (in the
    stages or in the FIFO) are fewer than the FIFO's depth, so every result finds a place.
    `feed(enter)` wires the valid bits and returns a `Cuts` whose stage k loads when stage
    k - 1 held an element; `finish(result, out_ready)` pushes the last stage's result
    (a combinational function of its registers) into the FIFO, a small memory read
    combinationally, and returns (valid, data) for the output stream (valid a flip-flop)."""

    def __init__(self, stages, clk, prefix: str = ""):
        self.stages, self.clk, self.prefix = tuple(stages), clk, prefix
        self.depth = credited_depth(len(self.stages))
        cw = clog2(self.depth + 1)
        self.owed = ctrl_reg(m.UInt[cw], f"{prefix}owed")
        self.ready_q = ctrl_reg(m.Bit, f"{prefix}credit", init=1)
        self.ready = self.ready_q.O
        self.flow = Flowing(self.stages, prefix)
        self.enter = None

    def feed(self, enter) -> Cuts:
        self.enter = enter
        self.cuts = self.flow.feed(enter)
        return self.cuts

    def finish(self, result, out_ready):
        from magma_llama.stages.sram import memory
        self.cuts.done()
        d, p = self.depth, self.prefix
        pw = clog2(d)
        wr = ctrl_reg(m.UInt[pw], f"{p}fifo_wr")
        rd = ctrl_reg(m.UInt[pw], f"{p}fifo_rd")
        count = ctrl_reg(m.UInt[clog2(d + 1)], f"{p}fifo_count")
        valid_q = ctrl_reg(m.Bit, f"{p}fifo_valid")
        self.push = push = self.flow.out_valid
        fire = valid_q.O & out_ready
        data = memory(f"{p}fifo_mem", d, len(result), self.clk, push, wr.O, m.bits(result), rd.O)
        wr.I @= m.mux([wr.O, wr.O + 1], push)
        rd.I @= m.mux([rd.O, rd.O + 1], fire)
        count_next = m.mux([count.O, count.O + 1, count.O - 1, count.O], m.bits([push, fire]))
        count.I @= count_next
        valid_q.I @= count_next != 0
        o = self.owed.O
        self.owed.I @= m.mux([m.mux([o, o - 1], fire), m.mux([o + 1, o], fire)], self.enter)
        # room after this cycle (owed' < depth) without the adder: owed' reaches depth only from
        # depth (nothing leaves) or from depth - 1 (one enters and nothing leaves)
        self.ready_q.I @= ~(~fire & ((o == d) | ((o == d - 1) & self.enter)))
        self.fifo = dict(wr=wr, rd=rd, count=count, valid=valid_q, fire=fire)
        return valid_q.O, data

    def props(self, p, in_fire: str, out_fire: str, bits: int = 8) -> None:
        """Formal: the elements owed are the ones entered and not yet out, which are those in the
        stages plus those in the FIFO; never more than the FIFO holds; ready is its function of
        the state; the FIFO's pointers agree with its count; nothing is pushed into a full FIFO."""
        d = self.depth
        ow, cnt = p.sig(self.owed.O), p.sig(self.fifo["count"].O)
        wr, rd = p.sig(self.fifo["wr"].O), p.sig(self.fifo["rd"].O)
        f_in = p.counter(in_fire, bits, f"{self.prefix}cr_in")
        f_out = p.counter(out_fire, bits, f"{self.prefix}cr_out")
        inside = self.flow.count(p, bits)
        p.assert_(f"({f_in} - {f_out}) == ({bits}'d0 + {ow})")
        p.assert_(f"{ow} <= {d} && {cnt} <= {d}")
        p.assert_(f"({bits}'d0 + {ow}) == ({bits}'d0 + {cnt} + {inside})")
        p.assert_(f"{p.sig(self.ready)} == ({ow} != {d})")
        p.assert_(f"{p.sig(self.fifo['valid'].O)} == ({cnt} != 0)")
        p.assert_(f"(({wr} - {rd}) & {d - 1}) == ({cnt} & {d - 1})")
        p.assert_(f"!({p.sig(self.push)} && {cnt} == {d})")
