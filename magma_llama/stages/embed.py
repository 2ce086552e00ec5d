"""Embedding fetch: one row of the quantized embedding matrix as `dim` Q12.20 activations
(`golden.stages.embed`).

Ports (ready/valid streams, CLK and a synchronous RESET):
- `W` (in): the row's weight beats exactly as the matvec engine takes them
  (`matvec.WeightBeat(L, bits)`, `numerics.weights.weight_beats`): ceil(dim / L) beats,
  each lane a mantissa and its group exponent, the last beat padded;
- `O` (out): `dim` beats, element i = sat32(shift(m_i, e_i + F)), in order.

A W beat is held in a register and its lanes step out one per cycle; the padding lanes of
the last beat are skipped.  A lane's element is formed in a pipeline of
`stages/latency.EMBED_PIPELINE`: the lane's mantissa and shift amount picked out of the
beat, the shift in two registered halves (MatVec's shifter: a left shift, or a right
shift by -k-1 before the rounding half), the rounding half, then the saturation into the
`O` register.  Each stage holds while the one after it is full and not moving (a
valid bit per stage), so `O.ready` stalls it without losing a beat.  The next W beat is
taken in the cycle its predecessor's last lane steps out, so a valid W stream gives one O
beat per cycle (L cycles per W beat); an element reaches `O` `EMBED_LATENCY` cycles after
its step."""

from __future__ import annotations


import magma as m

from magma_llama.numerics.fixed import ACC_BITS, ACT_BITS, ACT_FRAC
from magma_llama.numerics.weights import EXP_BITS
from magma_llama.stages import units
from magma_llama.stages.latency import EMBED_PIPELINE
from magma_llama.stages.matvec import SHIFT_BITS, WeightBeat, _round_half, _shift, _shift_amount, beats_per_row
from magma_llama.stages.pipeline import Stalled, hold
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when, select
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]

MUTANTS = {
    "padding_lane": "sends the padding lanes of the last beat too (one vector is L * beats long)",
    "drop_stalled": "drops O.valid while O is stalled",
}


class Embed(m.Generator2):
    def __init__(self, lanes: int, bits: int, dim: int, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "embed")
        if lanes < 1 or dim < 1:
            raise ValueError(f"embed needs lanes, dim >= 1, got {lanes}, {dim}")
        L, B = lanes, beats_per_row(dim, lanes)
        tail = dim - (B - 1) * L                  # lanes of the last beat that carry elements
        if mutant == "padding_lane":
            tail = L
        self.name = f"Embed_L{L}_w{bits}_d{dim}" + (f"_mut_{mutant}" if mutant else "") + (
            "_formal" if formal else "")
        Beat = WeightBeat(L, bits)
        self.io = io = clocked(W=StreamIn(Beat), O=StreamOut(ACT))

        held = ctrl_reg(m.Bit, "held")            # a W beat is in `beat_*`
        lane = ctrl_reg(m.UInt[clog2(L)], "lane")
        beat = ctrl_reg(m.UInt[clog2(B)], "beat")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data", enable=True)
        mants = [data_reg(m.Bits[bits], f"mant{j}", enable=True) for j in range(L)]
        exps = [data_reg(m.Bits[EXP_BITS], f"exp{j}", enable=True) for j in range(L)]

        # the pipeline (EMBED_PIPELINE): a valid bit per stage; a stage takes the one before's
        # element when it is empty or its own moves on
        o_free = ~o_valid.O | io.O.ready
        pipe = Stalled(EMBED_PIPELINE[:-1], o_free)      # "out" is the O register itself
        step = held.O & pipe.free[0]              # lane `lane` steps out into "pick"
        last_beat = beat.O == (B - 1)
        lane_end = m.mux([lane.O == (L - 1), lane.O == (tail - 1)], last_beat) if B > 1 else (lane.O == (tail - 1))
        beat_done = step & lane_end
        w_ready = ~held.O | beat_done
        w_fire = io.W.valid & w_ready

        for j in range(L):
            load_when(mants[j], w_fire, io.W.data.mant[j])
            load_when(exps[j], w_fire, io.W.data.exp[j])
        mant = select([r.O for r in mants], lane.O)
        exp = select([r.O for r in exps], lane.O)
        # pick: the lane's mantissa (64 bits, like the golden model's int64) and k = e + F
        neg, amt = _shift_amount(exp, ACT_FRAC)
        moves = pipe.feed(step)
        vals = [hold(m.sext_to(m.sint(mant), ACC_BITS), "pick_m", moves[0]),
                hold(neg, "pick_neg", moves[0]), hold(amt, "pick_amt", moves[0])]
        # shift_hi, shift_lo: MatVec's two-step shifter
        p_, n_, a_ = vals
        lo = SHIFT_BITS // 2
        hi_amt = m.uint(m.concat(m.bits(0, lo), m.bits(a_)[lo:]))
        sh = hold(_shift(p_, n_, hi_amt), "sh", moves[1])
        sh_neg, sh_amt = hold(n_, "sh_neg", moves[1]), hold(m.uint(m.bits(a_)[:lo]), "sh_amt", moves[1])
        u = hold(_shift(sh, sh_neg, sh_amt), "u", moves[2])
        u_neg = hold(sh_neg, "u_neg", moves[2])
        rounded = hold(_round_half(u, u_neg), "rounded", moves[3])
        element = units.sat(rounded, ACT_BITS)
        o_take = moves[4]                         # "out": into the O register

        zero_lane = m.uint(0, len(lane.O))
        held.I @= w_fire | (held.O & ~beat_done)
        lane.I @= m.mux([lane.O, m.mux([lane.O + 1, zero_lane], lane_end)], step)
        beat.I @= m.mux([beat.O, m.mux([beat.O + 1, m.uint(0, len(beat.O))], last_beat)], beat_done)
        o_valid.I @= o_take | (o_valid.O & ~io.O.ready) if mutant != "drop_stalled" else o_take
        load_when(o_data, o_take, m.bits(element))

        io.W.ready @= w_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            w, o = p.monitor(io.W), p.monitor(io.O)
            hl, ln, bt = p.sig(held.O), p.sig(lane.O), p.sig(beat.O)
            true_tail = dim - (B - 1) * L
            # counters in range; no lane in flight without a held beat
            p.assert_(f"{ln} < {L}")
            p.assert_(f"{bt} < {B}")
            p.assert_(f"{bt} != {B - 1} || {ln} < {true_tail}")
            p.assert_(f"{hl} || {ln} == 0")
            # an independent element counter (wraps at dim) agrees with beat * L + lane:
            # every vector is exactly `dim` O beats, the padding lanes never leave
            eb = clog2(dim) + 1
            f_elem = p.reg(eb, "elem")
            p.lines.append(f"always @(posedge {p.clk}) if ({p.rst}) {f_elem} <= 0; "
                           f"else if ({p.sig(step)}) {f_elem} <= ({f_elem} == {dim - 1}) ? 0 : {f_elem} + 1'b1;")
            p.assert_(f"{f_elem} == {bt} * {L} + {ln}")
            # one O beat per element stepped out: steps minus O transfers is the elements in
            # the pipeline (its valid bits and O.valid)
            f_steps = p.counter(p.sig(step), 4, "steps")
            f_out = p.counter(o["fire"], 4, "out")
            p.assert_(f"({f_steps} - {f_out}) == {pipe.count(p, 4)} + ({o['valid']} ? 4'd1 : 4'd0)")
            # a whole vector delivered (its last element leaves O), then the next row's first beat
            done = p.sticky(f"{o['fire']} && {f_elem} == 0", "vector_done")
            p.cover(f"{done} && {w['fire']}")
            p.cover(f"{o['valid']} && !{o['ready']} && {w['valid']} && {hl}")
            p.emit()


# emitted: stories260K's embedding (dim 64) at L=16, w16; proved: L=2, w8, dim 3 (a padded last beat)
EMBED_EMITTED = (16, 16, 64)
EMBED_PROVED = (2, 8, 3)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("embed", "Embedding row fetch, L=16 w16 dim 64 (emit) / L=2 w8 dim 3 (proof): "
                      "dim O beats per row, padding lanes skipped",
                      Embed, EMBED_EMITTED, EMBED_PROVED, MUTANTS, depth=6)]
