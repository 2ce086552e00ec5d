"""Fork: broadcast each input beat to N outputs, exactly once to each.

Outputs may accept in different cycles: a `done` flag per output remembers who
already took the current beat, and the input beat completes in the cycle the
last output takes it.  No storage, so no added latency."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import all_of, check_mutant, clocked, ctrl_reg, module_name
from magma_llama.streams.types import StreamIn, StreamOut

MUTANTS = {
    "twice": "forgets which outputs already took the beat, so a fast output gets it again",
}


class Fork(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False, pick: tuple[int, ...] | None = None):
        """pick: output k gets element pick[k] of an Array[max(pick) + 1, T] input beat (a
        scatter: the same handshake, a part of the beat each); every element is picked."""
        if n < 1:
            raise ValueError(f"fork needs n >= 1 outputs, got {n}")
        if pick is not None and (len(pick) != n or sorted(set(pick)) != list(range(max(pick) + 1))):
            raise ValueError(f"fork: pick must give each of the {n} outputs an element, every element used")
        check_mutant(mutant, MUTANTS, "fork")
        self.name = module_name("Fork", T, f"n{n}", *([f"pick{''.join(map(str, pick))}"] if pick else []),
                                mutant=mutant, formal=formal)
        In = T if pick is None else m.Array[max(pick) + 1, T]
        self.io = io = clocked(I=StreamIn(In), **{f"O{k}": StreamOut(T) for k in range(n)})
        outs = [getattr(io, f"O{k}") for k in range(n)]
        done = [ctrl_reg(m.Bit, f"done{k}") for k in range(n)]
        valids = []
        for k, (o, d) in enumerate(zip(outs, done)):
            v = io.I.valid if mutant == "twice" else io.I.valid & ~d.O
            o.valid @= v
            o.data @= io.I.data if pick is None else io.I.data[pick[k]]
            valids.append(v)
        in_ready = all_of([d.O | o.ready for o, d in zip(outs, done)])
        fire = io.I.valid & in_ready
        for o, d, v in zip(outs, done, valids):
            d.I @= m.mux([d.O | (v & o.ready), m.bit(0)], fire)
        io.I.ready @= in_ready

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i = p.monitor(io.I)
            fin = p.counter(i["fire"], 4, "in")
            for o, d in zip(outs, done):
                so = p.monitor(o)
                t = p.track(i, so, 4, f_in=fin)
                ds = p.sig(d.O)
                # exactly once: this output has taken every completed beat, plus the
                # current one iff its done flag is set
                p.assert_(f"({t['out']} - {fin}) == {ds}")
                p.assert_(f"!{ds} || {i['valid']}")
            p.cover(f"{p.sig(outs[0].valid)} && !{p.sig(outs[0].ready)} && {p.sig(done[-1].O)}")
            p.cover(f"{i['fire']} && {p.sig(done[0].O)}")
            p.cover(f"{fin} == 3")
            p.emit()
