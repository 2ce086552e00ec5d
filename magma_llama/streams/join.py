"""Join: N input streams into one stream of N-tuples.

A tuple leaves when every input has a beat; all inputs are consumed in that
same cycle, so beat k of the output holds beat k of every input."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import all_of, check_mutant, clocked, module_name
from magma_llama.streams.types import StreamIn, StreamOut

MUTANTS = {
    "eager": "each input is consumed when the output is ready, even if another input is empty",
}


class Join(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False):
        if n < 1:
            raise ValueError(f"join needs n >= 1 inputs, got {n}")
        check_mutant(mutant, MUTANTS, "join")
        self.name = module_name("Join", T, f"n{n}", mutant=mutant, formal=formal)
        OutT = m.Tuple[tuple([T] * n)]
        self.io = io = clocked(**{f"I{k}": StreamIn(T) for k in range(n)}, O=StreamOut(OutT))
        ins = [getattr(io, f"I{k}") for k in range(n)]
        all_valid = all_of([i.valid for i in ins])
        for k, i in enumerate(ins):
            i.ready @= io.O.ready if mutant == "eager" else io.O.ready & all_valid
            io.O.data[k] @= i.data
        io.O.valid @= all_valid

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            o = p.monitor(io.O)
            for k, i in enumerate(ins):
                si = p.monitor(i)
                lane = dict(o, data=p.data(io.O.data[k]), width=si["width"])
                t = p.track(si, lane, 4)
                p.assert_(f"{t['in']} == {t['out']}")      # no input beat consumed without a tuple
            p.cover(f"{o['valid']} && !{o['ready']}")
            p.cover(f"{p.sig(ins[0].valid)} && !{o['valid']}")
            p.cover(f"{o['fire']}")
            p.emit()
