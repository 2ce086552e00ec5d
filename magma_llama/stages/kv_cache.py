"""KV cache: an N rows x W words x B bits memory with a write stream, a read stream
and a read-during-write bypass.

One instance holds K (or V) for whatever the config folds into the row address
(layer, kv head, position); the generator only sees rows x words x bits.

- `W` (write): beats {row, word, data}; always ready, the cell is written at the
  transfer's clock edge.
- `R` (read request): beats {row, word}; `D` (read data): one beat per request, in
  order, one cycle after the request's transfer (a register slice, so R.ready =
  !D.valid | D.ready and D.valid is a flop).
- Bypass: a read accepted in the same cycle as a write to the same address returns
  the new data, so a read always sees every write accepted up to and including its
  own cycle.  Without it (mutant `no_bypass`) the memory array still holds the old
  value at that edge.

Addresses outside rows x words are ignored by writes; reads of them are undefined.
The array is built from registers (fine for the reduced instances that are proven
and simulated); a large cache would map it onto an SRAM macro with the same ports."""

from __future__ import annotations

import functools

import magma as m

from magma_llama.streams._base import (check_mutant, clocked, ctrl_reg, data_reg, module_name,
                                       select)
from magma_llama.streams.types import StreamIn, StreamOut, clog2

MUTANTS = {
    "no_bypass": "a read in the same cycle as a write to its address returns the old value",
}


@functools.lru_cache(maxsize=None)
def KvAddr(rows: int, words: int):
    """Read request payload: {row, word}."""
    return m.Product.from_fields(f"KvAddr_{rows}_{words}",
                                 {"row": m.UInt[clog2(rows)], "word": m.UInt[clog2(words)]})


@functools.lru_cache(maxsize=None)
def KvWrite(rows: int, words: int, bits: int):
    """Write payload: {row, word, data}."""
    return m.Product.from_fields(f"KvWrite_{rows}_{words}_{bits}",
                                 {"row": m.UInt[clog2(rows)], "word": m.UInt[clog2(words)],
                                  "data": m.Bits[bits]})


class KvCache(m.Generator2):
    def __init__(self, rows: int, words: int, bits: int, mutant=None, formal=False):
        if rows < 1 or words < 1 or bits < 1:
            raise ValueError(f"kv cache needs rows, words, bits >= 1, got {rows}, {words}, {bits}")
        check_mutant(mutant, MUTANTS, "kv_cache")
        T = m.Bits[bits]
        self.name = module_name("KvCache", T, f"r{rows}", f"w{words}", mutant=mutant, formal=formal)
        self.io = io = clocked(W=StreamIn(KvWrite(rows, words, bits)),
                               R=StreamIn(KvAddr(rows, words)),
                               D=StreamOut(T))
        n = rows * words
        ab = clog2(n) + 1

        def flat(row, word):
            # row * words + word, wide enough that an out-of-range address stays out of range
            return m.uint(m.zext_to(row, ab)) * m.uint(words, ab) + m.uint(m.zext_to(word, ab))

        mem = [data_reg(T, f"cell{k}") for k in range(n)]
        valid = ctrl_reg(m.Bit, "rd_valid")
        data = data_reg(T, "rd_data")

        w_addr = flat(io.W.data.row, io.W.data.word)
        r_addr = flat(io.R.data.row, io.R.data.word)
        w_fire = io.W.valid              # W is always ready
        r_ready = ~valid.O | io.D.ready
        r_fire = io.R.valid & r_ready
        for k, cell in enumerate(mem):
            cell.I @= m.mux([cell.O, io.W.data.data], w_fire & (w_addr == k))
        stored = select([c.O for c in mem], r_addr[:clog2(n)])
        bypass = w_fire & (w_addr == r_addr)
        if mutant == "no_bypass":
            bypass = m.bit(0)
        read = m.mux([stored, io.W.data.data], bypass)
        valid.I @= m.mux([valid.O, io.R.valid], r_ready)
        data.I @= m.mux([data.O, read], r_fire)
        io.W.ready @= m.bit(1)
        io.R.ready @= r_ready
        io.D.valid @= valid.O
        io.D.data @= data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            w, r, d = p.monitor(io.W), p.monitor(io.R), p.monitor(io.D)
            wa, ra = p.sig(w_addr), p.sig(r_addr)
            wd = p.sig(io.W.data.data)
            clk, rst = p.clk, p.rst
            # one arbitrary in-range address and a shadow of its latest write
            f_addr = p.anyconst(ab, "addr")
            p.assume(f"{f_addr} < {n}")
            f_known = p.reg(1, "known")
            f_val = p.reg(bits, "val")
            p.lines.append(f"always @(posedge {clk}) if ({w['fire']} && {wa} == {f_addr}) "
                           f"begin {f_known} <= 1'b1; {f_val} <= {wd}; end")
            # a read of it in flight: the value it must return (same-cycle write included)
            f_pend = p.reg(1, "pend")
            f_exp = p.reg(bits, "exp")
            f_exp_known = p.reg(1, "exp_known")
            same = f"({w['fire']} && {wa} == {f_addr})"
            p.lines.append(
                f"always @(posedge {clk}) if ({rst}) {f_pend} <= 1'b0; "
                f"else if ({r['fire']}) begin {f_pend} <= ({ra} == {f_addr}); "
                f"{f_exp} <= {same} ? {wd} : {f_val}; {f_exp_known} <= {same} || {f_known}; end "
                f"else if ({d['fire']}) {f_pend} <= 1'b0;")
            # the property: a read of the tracked address returns its latest write
            p.assert_(f"!({d['valid']} && {f_pend} && {f_exp_known}) || {d['data']} == {f_exp}")
            # invariants for induction: the array cell holds the shadow; a pending read is in D
            cells = p.wire(ab, "cell_sel", f_addr)
            for k, cell in enumerate(mem):
                p.assert_(f"!({f_known} && {cells} == {k}) || {p.sig(cell.O)} == {f_val}")
            p.assert_(f"!{f_pend} || {d['valid']}")
            # covers: a same-cycle write and read of one address, and its answer delivered
            p.cover(f"{w['fire']} && {r['fire']} && {wa} == {ra}")
            bypassed = p.sticky(f"{w['fire']} && {r['fire']} && {wa} == {f_addr} && {ra} == {f_addr}", "bypassed")
            p.cover(f"{bypassed} && {d['fire']} && {f_pend} && {d['data']} == {f_exp}")
            p.emit()


# proofs: 4 rows x 2 words x 8 bits; emission: 16 positions x 8 words of one Q12.20 activation
KV_PROVED = (4, 2, 8)
KV_EMITTED = (16, 8, 32)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("kv_cache", "KV cache memory, 4x2x8 (proof) / 16x8x32 (emit), read-during-write bypass",
                      KvCache, KV_EMITTED, KV_PROVED, MUTANTS, depth=4)]
