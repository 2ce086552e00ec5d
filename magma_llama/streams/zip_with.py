"""ZipWith: join two streams and register fn(a, b), one result per pair.

SpinalHDL's `StreamJoin(a, b).translateWith(fn).m2sPipe()` and Amaranth's
`lib.stream` join + map + register as one block, the control of the element-wise
stages (Residual: sat32(a + b); SwiGLU: silu(h1) * h3).  A pair moves only when both
inputs are valid and the output register is free (empty or being read), so neither
input is ever taken alone (A.ready = free & B.valid, B.ready = free & A.valid);
`O.valid` comes one cycle after the pair's transfer, one pair per cycle.  A, B and O carry the same payload type; `fn` builds the
combinational function from the two payloads.  `ports` renames A, B, O (a stage keeps
its own port names).  The formal build (`formal=True`) replaces `fn` by a xor of the
two payloads, so that the proof can follow an arbitrary pair to its result."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when, module_name
from magma_llama.streams.types import StreamIn, StreamOut

MUTANTS = {
    "eager": "takes an A beat when O is free even though B is empty (the inputs drift apart)",
    "overwrite": "takes a pair while O is stalled, overwriting the unread result",
}


def xor(a, b):
    return a ^ b


class ZipWith(m.Generator2):
    def __init__(self, T, fn=xor, ports=("A", "B", "O"), name=None, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "zip_with")
        self.name = name or module_name("ZipWith", T, mutant=mutant, formal=formal)
        pa, pb, po = ports
        self.io = io = clocked(**{pa: StreamIn(T), pb: StreamIn(T), po: StreamOut(T)})
        a, b, out = getattr(io, pa), getattr(io, pb), getattr(io, po)

        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(T, "o_data", enable=True)
        o_free = ~o_valid.O | out.ready
        if mutant == "overwrite":
            o_free = m.bit(1)
        take = a.valid & b.valid & o_free
        # each input's ready waits for the other's valid, never for its own
        a.ready @= o_free & (m.bit(1) if mutant == "eager" else b.valid)
        b.ready @= o_free & a.valid
        o_valid.I @= take | (o_valid.O & ~out.ready)
        load_when(o_data, take, xor(a.data, b.data) if formal else fn(a.data, b.data))
        out.valid @= o_valid.O
        out.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            fa, fb, fo = p.monitor(a), p.monitor(b), p.monitor(out)
            ov = p.sig(o_valid.O)
            bits = 4
            # the inputs move together, and each pair gives one O beat
            n_a = p.counter(fa["fire"], bits, "a_in")
            n_b = p.counter(fb["fire"], bits, "b_in")
            n_o = p.counter(fo["fire"], bits, "out")
            p.assert_(f"{n_a} == {n_b}")
            p.assert_(f"({n_a} - {n_o}) == {ov}")
            # one arbitrary pair (number idx, data da, db) comes out as da ^ db at number idx
            idx = p.anyconst(bits, "idx")
            w = fa["width"]
            da, db = p.anyconst(w, "da"), p.anyconst(w, "db")
            p.assume(f"!({fa['valid']} && {n_a} == {idx}) || {fa['data']} == {da}")
            p.assume(f"!({fb['valid']} && {n_b} == {idx}) || {fb['data']} == {db}")
            p.assert_(f"!({ov} && {n_o} == {idx}) || {p.sig(o_data.O)} == ({da} ^ {db})")
            # covers: O stalled with both inputs waiting; a pair taken while O is read;
            # four results delivered, one of them after such a stall
            stalled = f"{ov} && !{fo['ready']} && {fa['valid']} && {fb['valid']}"
            p.cover(stalled)
            p.cover(f"{p.sticky(fo['fire'], 'out_seen')} && {fa['fire']} && {fo['fire']}")
            p.cover(f"{p.sticky(stalled, 'stalled')} && {fo['fire']} && {n_o} == 3")
            p.emit()
