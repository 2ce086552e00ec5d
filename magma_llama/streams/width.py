"""Width adapters: N narrow beats <-> one wide beat (an Array[N, T], element 0 first).

`Upsize` gathers N beats and can take the first beat of the next group in the
same cycle the full group leaves, so it runs at full input rate.  `Downsize`
sends the N pieces of a wide beat in order and loads the next wide beat in the
cycle the last piece leaves."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, module_name, pad_pow2
from magma_llama.streams.types import StreamIn, StreamOut, clog2

UPSIZE_MUTANTS = {
    "drop": "when a group leaves and a new beat arrives in the same cycle, loses the new beat",
}
DOWNSIZE_MUTANTS = {
    "short": "treats the second-to-last piece as the last, so the final piece is never sent",
}


class Upsize(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False):
        if n < 2:
            raise ValueError(f"upsize needs n >= 2, got {n}")
        check_mutant(mutant, UPSIZE_MUTANTS, "upsize")
        self.name = module_name("Upsize", T, f"n{n}", mutant=mutant, formal=formal)
        cw = n.bit_length()
        self.io = io = clocked(I=StreamIn(T), O=StreamOut(m.Array[n, T]))
        buf = [data_reg(T, f"buf{k}") for k in range(n)]
        cnt = ctrl_reg(m.UInt[cw], "count")
        full = cnt.O == n
        in_ready = ~full | io.O.ready
        accept = io.I.valid & in_ready
        ofire = full & io.O.ready
        slot = m.mux([cnt.O, m.uint(0, cw)], full)
        after_out = m.uint(0, cw) if mutant == "drop" else m.mux([m.uint(0, cw), m.uint(1, cw)], accept)
        cnt.I @= m.mux([m.mux([cnt.O, cnt.O + 1], accept), after_out], ofire)
        for k, b in enumerate(buf):
            b.I @= m.mux([b.O, io.I.data], accept & (slot == k))
            io.O.data[k] @= b.O
        io.I.ready @= in_ready
        io.O.valid @= full

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            if n & (n - 1):
                raise ValueError("upsize proofs need n a power of two (counters wrap together)")
            bits = cw + 3
            f_in = p.counter(i["fire"], bits, "in")
            f_out = p.counter(o["fire"], bits, "out")
            f_idx = p.anyconst(bits, "idx")
            f_data = p.anyconst(i["width"], "data")
            c = p.sig(cnt.O)
            p.assume(f"!({i['valid']} && {f_in} == {f_idx}) || {i['data']} == {f_data}")
            p.assert_(f"{c} <= {n}")
            p.assert_(f"{f_in} == {f_out} * {bits}'d{n} + {c}")           # N narrow beats per wide beat
            base = p.wire(bits, "base", f"{f_out} * {n}")
            off = p.wire(bits, "off", f"{f_idx} - {base}")
            for k, b in enumerate(buf):
                # the tracked beat, once gathered, sits in slot (index mod n) of its group
                p.assert_(f"!({off} < {c} && {off} == {k}) || {p.sig(b.O)} == {f_data}")
            p.cover_fill_stall_drain(f"{c} == {n}", f"{c} == 0", f"{o['valid']} && !{o['ready']}")
            p.cover(f"{o['fire']} && {i['fire']}")
            p.emit()


class Downsize(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False):
        if n < 2:
            raise ValueError(f"downsize needs n >= 2, got {n}")
        check_mutant(mutant, DOWNSIZE_MUTANTS, "downsize")
        self.name = module_name("Downsize", T, f"n{n}", mutant=mutant, formal=formal)
        iw = clog2(n)
        self.io = io = clocked(I=StreamIn(m.Array[n, T]), O=StreamOut(T))
        buf = [data_reg(T, f"buf{k}") for k in range(n)]
        full = ctrl_reg(m.Bit, "full")
        idx = ctrl_reg(m.UInt[iw], "piece")
        last_piece = idx.O == (n - 2 if mutant == "short" else n - 1)
        ofire = full.O & io.O.ready
        in_ready = ~full.O | (ofire & last_piece)
        accept = io.I.valid & in_ready
        full.I @= accept | (full.O & ~(ofire & last_piece))
        idx.I @= m.mux([m.mux([idx.O, idx.O + 1], ofire), m.uint(0, iw)], accept)
        for k, b in enumerate(buf):
            b.I @= m.mux([b.O, io.I.data[k]], accept)
        io.I.ready @= in_ready
        io.O.valid @= full.O
        io.O.data @= m.mux(pad_pow2([b.O for b in buf]), idx.O)

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            if n & (n - 1):
                raise ValueError("downsize proofs need n a power of two (counters wrap together)")
            bits = iw + 4
            f_in = p.counter(i["fire"], bits - (n.bit_length() - 1), "in")
            f_out = p.counter(o["fire"], bits, "out")
            f_idx = p.anyconst(bits, "idx")          # index of one narrow beat
            f_data = p.anyconst(o["width"], "data")
            fl, ix = p.sig(full.O), p.sig(idx.O)
            piece = p.wire(bits, "piece", f"{f_idx} % {n}")
            group = p.wire(bits - (n.bit_length() - 1), "group", f"{f_idx} / {n}")
            lanes = [p.data(io.I.data[k]) for k in range(n)]
            sel = " : ".join(f"{piece} == {k} ? {lanes[k]}" for k in range(n - 1)) + f" : {lanes[-1]}"
            p.assume(f"!({i['valid']} && {f_in} == {group}) || ({sel}) == {f_data}")
            p.assert_(f"!({o['valid']} && {f_out} == {f_idx}) || {o['data']} == {f_data}")
            p.assert_(f"{ix} < {n}")
            p.assert_(f"{fl} || {ix} == 0")
            # every wide beat in has produced its pieces, minus those still to send
            p.assert_(f"{f_out} == {f_in} * {bits}'d{n} - ({fl} ? {bits}'d{n} - {ix} : {bits}'d0)")
            for k, b in enumerate(buf):
                p.assert_(f"!({fl} && {f_in} - 1'b1 == {group} && {piece} == {k} && {k} >= {ix}) "
                          f"|| {p.sig(b.O)} == {f_data}")
            p.cover(f"{o['valid']} && !{o['ready']}")
            p.cover(f"{i['fire']} && {o['fire']}")
            was = p.sticky(f"{f_out} == {2 * n}", "sent2")
            p.cover(f"{was} && !{fl}")
            p.emit()
