"""Sampler: temperature sampling with xorshift32, `numerics.sampling.HardwareSampler` in hardware.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `I` (in): `vocab` signed Q12.20 logits per vector, one per beat.
- `O` (out): one beat per vector, the sampled token (UInt[clog2(vocab)]).
- `inv_t` (plain input, Bits[31]): 1/T as unsigned Q15.16 (`inv_temperature_q16`),
  held steady by the controller.
- `seed` (plain input, Bits[32]): the PRNG state loaded during RESET; the host passes
  `prng_seed(seed)`, never 0.

Three passes over the vector, and one cycle for the coin (the maths is in `numerics/sampling.py`):
1. LOAD (one logit a cycle): z_i = sat32(rshr(logit_i * inv_t, 16)) is written to a
   `vocab` x 32-bit memory and the running max M kept (a strict > keeps the first);
2. SUM (one element a cycle): total = sum exp_neg(sat32(z_i - M)), Q1.30 terms;
3. COIN (one cycle): r = xorshift32(state), state = r, coin = (r * total) >> 32;
4. SEARCH (one element a cycle): the running cdf of exp_neg(z_i - M), recomputed from
   the memory; the first i with cdf > coin is the token (the last element if none,
   which the arithmetic never needs since coin < total).
The token goes to the `O` register, then the next vector loads; `I` is ready only in
LOAD.  The memory has a registered read port (an SRAM's): its address is the element
counter's next value, so the word of element `idx` is on the read data while `idx` is
current.  It is an `sram.Sram` with the registered read, so Yosys maps it to block RAM
(one DP16KD at vocab 512), not to vocab x 32 flip-flops and a read mux.  A SEARCH hit waits while `O` still holds an unread token.

The `formal=True` build swaps the payload arithmetic (the 64-bit product for z, exp_neg
and the coin's product) for cheap stand-ins so that z3 sees only the control, which
is the same code in both builds."""

from __future__ import annotations


import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.numerics.sampling import INV_T_FRAC, PRNG_BITS
from magma_llama.stages import units
from magma_llama.stages.sram import memory
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]
LOAD, SUM, COIN, SEARCH = range(4)

MUTANTS = {
    "accept_while_busy": "I is ready in every phase: logits arriving during SUM/SEARCH are lost",
    "cdf_ge": "the search stops at the first cdf >= coin instead of > coin",
}


def xorshift32(s):
    """Marsaglia's xorshift32 (13, 17, 5) on Bits[32] (numerics.sampling.xorshift32)."""
    def shl(x, k):
        return m.concat(m.bits(0, k), x[:PRNG_BITS - k])

    def shr(x, k):
        return m.concat(x[k:], m.bits(0, k))
    s = s ^ shl(s, 13)
    s = s ^ shr(s, 17)
    return s ^ shl(s, 5)


class Sampler(m.Generator2):
    def __init__(self, vocab: int, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "sampler")
        if vocab < 2:
            raise ValueError(f"sampler needs vocab >= 2, got {vocab}")
        ib = clog2(vocab)
        tb = units.MANT_BITS + ib             # total and cdf: vocab terms of at most 2^30
        self.name = f"Sampler_v{vocab}" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        self.io = io = clocked(I=StreamIn(ACT), O=StreamOut(m.UInt[ib]),
                               inv_t=m.In(m.Bits[31]), seed=m.In(m.Bits[PRNG_BITS]))

        phase = ctrl_reg(m.UInt[2], "phase")
        idx = ctrl_reg(m.UInt[ib], "idx")
        zmax = data_reg(m.SInt[ACT_BITS], "zmax")
        total = data_reg(m.UInt[tb], "total")
        coin = data_reg(m.UInt[tb], "coin", enable=True)
        cdf = data_reg(m.UInt[tb], "cdf")
        state = data_reg(m.Bits[PRNG_BITS], "prng")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(m.UInt[ib], "o_data")

        in_load, in_sum = phase.O == LOAD, phase.O == SUM
        in_coin, in_search = phase.O == COIN, phase.O == SEARCH
        last = idx.O == (vocab - 1)
        o_free = ~o_valid.O | io.O.ready

        # LOAD: z_i into the memory, the running max
        if formal:
            z = m.sint(io.I.data)
        else:
            prod = units.s_(io.I.data, 64) * units.s_(m.uint(io.inv_t), 64)
            z = units.sat(units.rshr(prod, INV_T_FRAC), ACT_BITS)
        i_ready = in_load if mutant != "accept_while_busy" else m.bit(1)
        load_fire = io.I.valid & i_ready & in_load
        new_max = (idx.O == 0) | (z > zmax.O)
        zmax.I @= m.mux([zmax.O, z], load_fire & new_max)

        # SUM and SEARCH: the term of element idx (its word is on the read port)
        raddr = m.Bits[ib]()     # the read address: the element counter's next value (below)
        zi = m.sint(memory("zmem", vocab, ACT_BITS, io.CLK, load_fire, m.bits(idx.O), m.bits(z),
                           raddr, registered=True))
        if formal:
            d = m.uint((m.bits(zi) ^ m.bits(zmax.O))[:4])
            term = m.zext_to(d, tb) + m.uint(1, tb)
        else:
            diff = units.s_(zi, ACT_BITS + 1) - units.s_(zmax.O, ACT_BITS + 1)
            term = m.zext_to(units.exp_neg(units.sat(diff, ACT_BITS)), tb)
        total.I @= m.mux([total.O, m.mux([total.O, m.uint(0, tb)], idx.O == 0) + term], in_sum)

        # COIN: one PRNG step per token
        r = xorshift32(state.O)
        if formal:
            coin_next = total.O >> 1
        else:
            w = PRNG_BITS + tb
            wide = m.zext_to(m.uint(r), w) * m.zext_to(total.O, w)
            coin_next = m.uint(m.bits(wide)[PRNG_BITS:])
        load_when(coin, in_coin, coin_next)
        state.I @= m.mux([m.mux([state.O, r], in_coin), io.seed], m.bit(io.RESET))

        # SEARCH: the first element whose running cdf passes the coin
        cdf_next = m.mux([cdf.O, m.uint(0, tb)], idx.O == 0) + term
        hit = (cdf_next >= coin.O) if mutant == "cdf_ge" else (cdf_next > coin.O)
        found = in_search & (hit | last)
        emit = found & o_free
        step = load_fire | in_sum | (in_search & ~found)
        cdf.I @= m.mux([cdf.O, cdf_next], in_search & ~found)

        idx_next = m.mux([idx.O, m.mux([idx.O + 1, m.uint(0, ib)], last)], step)
        idx_next = m.mux([idx_next, m.uint(0, ib)], emit)
        idx.I @= idx_next
        raddr @= m.bits(idx_next)
        nxt = m.mux([phase.O, m.uint(SUM, 2)], in_load & load_fire & last)
        nxt = m.mux([nxt, m.uint(COIN, 2)], in_sum & last)
        nxt = m.mux([nxt, m.uint(SEARCH, 2)], in_coin)
        nxt = m.mux([nxt, m.uint(LOAD, 2)], emit)
        phase.I @= nxt
        o_valid.I @= (o_valid.O & ~io.O.ready) | emit
        o_data.I @= m.mux([o_data.O, idx.O], emit)

        io.I.ready @= i_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            ph, ix = p.sig(phase.O), p.sig(idx.O)
            p.assert_(f"{ix} < {vocab}")
            p.assert_(f"{ph} != {COIN} || {ix} == 0")
            p.assert_(f"!{o['valid']} || {o['data']} < {vocab}")
            # every logit accepted lands in the vector being loaded: logits in = vocab x
            # vectors completed + the load position (counted modulo 2^8)
            f_in = p.counter(i["fire"], 8, "logits")
            f_vec = p.counter(f"{i['fire']} && {ph} == {LOAD} && {ix} == {vocab - 1}", 8, "vectors")
            p.assert_(f"{f_in} == 8'd{vocab} * {f_vec} + ({ph} == {LOAD} ? {ix} : 8'd0)")
            # one token per vector: vectors in minus tokens out = the vector in work + the unread token
            f_out = p.counter(o["fire"], 8, "tokens")
            p.assert_(f"{f_vec} - {f_out} == ({ph} != {LOAD} ? 8'd1 : 8'd0) + ({o['valid']} ? 8'd1 : 8'd0)")
            # covers: a vector in and its token out; a second token; a hit held by a stalled O
            toks = p.counter(o["fire"], 2, "seen")
            p.cover(f"{o['fire']} && {toks} == 2'd1")
            p.cover(f"({ph} == {SEARCH}) && {o['valid']} && !{o['ready']} && {p.sig(found)}")
            p.emit()


SAMPLER_EMITTED = 512     # stories260K's vocabulary
SAMPLER_PROVED = 3


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("sampler", f"Temperature sampler, vocab {SAMPLER_EMITTED} (emit) / {SAMPLER_PROVED} (proof, "
                      "cheap payload arithmetic): phases, one token per vector",
                      Sampler, (SAMPLER_EMITTED,), (SAMPLER_PROVED,), ("accept_while_busy",), depth=8, cover_depth=24)]
