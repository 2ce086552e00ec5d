"""Round-robin arbiter: N input streams merged into one, fairly.

Priority starts just after the last input served, so a waiting input is served
within N output transfers.  A grant is locked while the output is stalled:
otherwise a newly valid input with higher priority would change the payload
under a stalled consumer, breaking the stream rule."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, module_name, pad_pow2, select
from magma_llama.streams.types import StreamIn, StreamOut, clog2

MUTANTS = {
    "fixed_priority": "never moves the priority pointer, so input 0 can starve the others",
    "no_lock": "re-arbitrates while the output is stalled, changing the payload",
}


class Arbiter(m.Generator2):
    def __init__(self, T, n: int, mutant=None, formal=False):
        if n < 1:
            raise ValueError(f"arbiter needs n >= 1 inputs, got {n}")
        check_mutant(mutant, MUTANTS, "arbiter")
        self.name = module_name("Arbiter", T, f"n{n}", mutant=mutant, formal=formal)
        gw = clog2(n)
        self.io = io = clocked(**{f"I{k}": StreamIn(T) for k in range(n)}, O=StreamOut(T))
        ins = [getattr(io, f"I{k}") for k in range(n)]
        prio = ctrl_reg(m.UInt[gw], "prio")
        lock = ctrl_reg(m.Bit, "lock")
        lock_idx = ctrl_reg(m.UInt[gw], "lock_idx")

        def const(k):
            return m.uint(k, gw)

        # for each priority p: the first valid input among p, p+1, ..., p-1
        picks = []
        for p in range(n):
            order = [(p + j) % n for j in range(n)]
            pick = const(order[-1])
            for k in reversed(order[:-1]):
                pick = m.mux([pick, const(k)], ins[k].valid)
            picks.append(pick)
        free = select(picks, prio.O)
        grant = free if mutant == "no_lock" else m.mux([free, lock_idx.O], lock.O)
        if n > 1:
            out_valid = m.mux(pad_pow2([i.valid for i in ins]), grant)
            out_data = m.mux(pad_pow2([i.data for i in ins]), grant)
        else:
            out_valid, out_data = ins[0].valid, ins[0].data
        fire = out_valid & io.O.ready
        for k, i in enumerate(ins):
            i.ready @= io.O.ready & (grant == k)
        io.O.valid @= out_valid
        io.O.data @= out_data
        nxt = m.mux([grant + 1, const(0)], grant == n - 1)
        if mutant == "fixed_priority":
            nxt = const(0)
        prio.I @= m.mux([prio.O, nxt], fire)
        lock.I @= out_valid & ~io.O.ready
        lock_idx.I @= grant

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            o = p.monitor(io.O)
            g, pr, lk, li = p.sig(grant), p.sig(prio.O), p.sig(lock.O), p.sig(lock_idx.O)
            fires = []
            for k, i in enumerate(ins):
                si = p.monitor(i)
                fires.append(si["fire"])
                # an input beat moves only as the output beat, carrying its data
                p.assert_(f"!{si['fire']} || ({o['fire']} && {o['data']} == {si['data']})")
                # fairness: while input k waits, fewer than n other beats go out
                wait = p.reg(gw + 2, f"wait{k}")
                p.lines.append(
                    f"always @(posedge {p.clk}) if ({p.rst} || !{si['valid']} || {si['fire']}) {wait} <= 0; "
                    f"else if ({o['fire']}) {wait} <= {wait} + 1'b1;")
                p.assert_(f"{wait} < {n}")
                # induction invariant: the wait so far plus the distance from the priority
                # pointer (or the locked grant) to k never exceeds n - 1
                dist = f"(({k} + {n} - {pr}) % {n})"
                p.assert_(f"!{si['valid']} || {wait} == 0 || {wait} + {dist} <= {n - 1}")
                ldist = f"(({li} + {n} - {pr}) % {n})"
                p.assert_(f"!({lk} && {si['valid']} && {wait} != 0) || {ldist} <= {dist}")
                p.cover(f"{wait} == {n - 1}")
            p.assert_(f"{o['fire']} == ({' + '.join(fires)} == 1)")
            p.assert_(f"{pr} < {n} && {li} < {n}")
            p.assert_(f"!{lk} || {o['valid']}")
            p.cover(f"{o['valid']} && !{o['ready']}")
            p.emit()
