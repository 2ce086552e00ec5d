"""Argmax: the greedy sampler, the index of the first largest of n logits.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `I` (in): n signed Q12.20 logits per vector, one per beat.
- `O` (out): one beat per vector, the index (UInt[clog2(n)]) of its first maximum
  (`numerics.functions.argmax`; run.c keeps the first maximum on a tie).

One logit is taken per cycle: a running (best value, best index) pair is replaced
only by a strictly larger logit, so a tie keeps the earlier index.  The vector's
last logit is compared in the same cycle and the index goes to the `O` register;
that beat waits only while `O` still holds an unread index.  The logits enter through a
skid buffer (`streams.Skid`, full rate), so the compare reads a register, not the
producer's logic.  Latency: `O.valid` `ARGMAX_LATENCY` (2) cycles after the last logit's
transfer (stages/latency.py)."""

from __future__ import annotations


import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg
from magma_llama.streams.chain import S
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]

MUTANTS = {
    "overwrite_o": "takes a vector's last logit while O is stalled, overwriting the unread index",
    "last_max": "a tie replaces the best (>= instead of >): the last maximum wins",
}


class Argmax(m.Generator2):
    def __init__(self, n: int, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "argmax")
        if n < 1:
            raise ValueError(f"argmax needs n >= 1, got {n}")
        ib = clog2(n)
        self.name = f"Argmax_n{n}" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        self.io = io = clocked(I=StreamIn(ACT), O=StreamOut(m.UInt[ib]))

        count = ctrl_reg(m.UInt[ib], "count")
        best = data_reg(m.SInt[ACT_BITS], "best")
        best_idx = data_reg(m.UInt[ib], "best_idx")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(m.UInt[ib], "o_data")

        inp = io.I if formal else S(io.I).skid("in_skid").port
        x = m.sint(inp.data)
        first = count.O == 0
        last = count.O == (n - 1)
        better = first | ((x >= best.O) if mutant == "last_max" else (x > best.O))
        o_free = ~o_valid.O | io.O.ready
        i_ready = ~last | o_free
        if mutant == "overwrite_o":
            i_ready = m.bit(1)
        fire = inp.valid & i_ready
        end = fire & last

        best.I @= m.mux([best.O, x], fire & better)
        best_idx.I @= m.mux([best_idx.O, count.O], fire & better)
        count.I @= m.mux([count.O, m.mux([count.O + 1, m.uint(0, ib)], last)], fire)
        o_valid.I @= (o_valid.O & ~io.O.ready) | end
        o_data.I @= m.mux([o_data.O, m.mux([best_idx.O, count.O], better)], end)

        inp.ready @= i_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            c, bv, bi = p.sig(count.O), p.sig(best.O), p.sig(best_idx.O)
            p.assert_(f"{c} < {n}")
            p.assert_(f"!{o['valid']} || {o['data']} < {n}")
            # one O beat per vector: vectors ended minus beats out = the unread beat in O
            f_vec = p.counter(f"{i['fire']} && {c} == {n - 1}", 4, "vectors")
            f_out = p.counter(o["fire"], 4, "out")
            p.assert_(f"({f_vec} - {f_out}) == ({o['valid']} ? 4'd1 : 4'd0)")
            # first maximum: one arbitrary position; once passed, the running best is at
            # least its value and, when equal, at an index no later than it
            f_pos = p.anyconst(ib, "pos")
            p.assume(f"{f_pos} < {n}")
            f_val = p.reg(ACT_BITS, "val")
            p.lines.append(f"always @(posedge {p.clk}) if ({i['fire']} && {c} == {f_pos}) {f_val} <= {i['data']};")
            p.assert_(f"{bi} < {c} || {c} == 0")
            p.assert_(f"!({c} > {f_pos}) || ($signed({bv}) > $signed({f_val}) || "
                      f"({bv} == {f_val} && {bi} <= {f_pos}))")
            # covers: a vector's index delivered, and a last logit held back by a stalled O
            p.cover(f"{p.sticky(o['fire'], 'delivered')} && {o['fire']}")
            p.cover(f"{i['valid']} && {c} == {n - 1} && {o['valid']} && !{o['ready']}")
            p.emit()


ARGMAX_EMITTED = 512      # stories260K's vocabulary
ARGMAX_PROVED = 3


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("argmax", f"Argmax, n={ARGMAX_EMITTED} (emit) / n={ARGMAX_PROVED} (proof): "
                      "one index per vector, first maximum",
                      Argmax, (ARGMAX_EMITTED,), (ARGMAX_PROVED,), MUTANTS, depth=6)]
