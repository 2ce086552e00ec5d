"""Demux: route each beat to the output named by its `sel` field.

The selector travels in the payload (`Routed[T, n]`), so it is held stable with
the beat like any other payload bit.  A `sel` >= n is a protocol error: such a
beat is never accepted."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, module_name, pad_pow2
from magma_llama.streams.types import Routed, StreamIn, StreamOut

MUTANTS = {
    "broadcast": "raises valid on every output, not just the selected one",
}


class Demux(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False):
        if n < 1:
            raise ValueError(f"demux needs n >= 1 outputs, got {n}")
        check_mutant(mutant, MUTANTS, "demux")
        self.name = module_name("Demux", T, f"n{n}", mutant=mutant, formal=formal)
        self.io = io = clocked(I=StreamIn(Routed(T, n)), **{f"O{k}": StreamOut(T) for k in range(n)})
        outs = [getattr(io, f"O{k}") for k in range(n)]
        sel = io.I.data.sel
        for k, o in enumerate(outs):
            o.valid @= io.I.valid if mutant == "broadcast" else io.I.valid & (sel == k)
            o.data @= io.I.data.data
        readies = [o.ready for o in outs]
        full = pad_pow2(readies)
        full = readies + [m.bit(0)] * (len(full) - len(readies))
        io.I.ready @= m.mux(full, sel) if n > 1 else readies[0] & (sel == 0)

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i = p.monitor(io.I)
            s = p.sig(sel)
            p.assume(f"!{i['valid']} || {s} < {n}")
            fires = []
            for k, o in enumerate(outs):
                so = p.monitor(o)
                fires.append(so["fire"])
                # a beat leaves on output k only if it was addressed to k, and then it is the input beat
                p.assert_(f"!{so['valid']} || ({s} == {k} && {so['data']} == {p.data(io.I.data.data)})")
                p.cover(f"{so['fire']}")
            # each input transfer is exactly one output transfer
            p.assert_(f"{i['fire']} == ({' + '.join(f'{f}' for f in fires)} == 1)")
            p.assert_(f"({' + '.join(f'{f}' for f in fires)}) <= 1")
            p.cover(f"{i['valid']} && !{i['ready']}")
            p.emit()
