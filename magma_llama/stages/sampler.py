"""Sampler: temperature sampling with xorshift32, `numerics.sampling.HardwareSampler` in hardware.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `I` (in): `vocab` signed Q12.20 logits per vector, one per beat.
- `O` (out): one beat per vector, the sampled token (UInt[clog2(vocab)]).
- `inv_t` (plain input, Bits[31]): 1/T as unsigned Q15.16 (`inv_temperature_q16`),
  held steady by the controller.
- `seed` (plain input, Bits[32]): the PRNG state loaded during RESET; the host passes
  `prng_seed(seed)`, never 0.

Three passes over the vector, and a coin between them (the maths is in `numerics/sampling.py`):
1. LOAD (one logit a cycle): z_i = sat32(rshr(logit_i * inv_t, 16)) through
   `SAMPLER_Z_PIPELINE` (the product on DSP tiles), written to a `vocab` x 32-bit memory,
   the running max M kept (a strict > keeps the first);
2. SUM (one element a cycle): total = sum exp_neg(sat32(z_i - M)), Q1.30 terms: a read a
   cycle, each word through `SAMPLER_TERM_PIPELINE` (the difference, then the pipelined
   exp_neg of `stages/units.py`), the total added at its end;
3. COIN: r = xorshift32(state), state = r, coin = (r * total) >> 32 through
   `SAMPLER_COIN_PIPELINE`; SEARCH starts when the coin is there and `O` is empty;
4. SEARCH (one element a cycle): the running cdf of the same terms, recomputed from the
   memory through the same pipeline; the first i with cdf > coin is the token (the last
   element if none, which the arithmetic never needs since coin < total).  The register
   holds coin - cdf, so the test is the sign of one subtraction.  The reads run
   ahead of the pipeline; those behind the token are dropped as they leave it.
The token goes to the `O` register; the next vector loads meanwhile.  The pipelines never
stall (`stages.pipeline.Flowing`): nothing waits inside a pass, and SUM starts only with the
term pipeline empty.  `stages/latency.sampler_latency` gives the cycles.  The memory is an
`sram.Sram` with a registered read, so Yosys maps it to block RAM (one DP16KD at vocab
512), not to vocab x 32 flip-flops and a read mux.

The `formal=True` build swaps the payload arithmetic (the 64-bit product for z, exp_neg
and the coin's product) for cheap stand-ins through one-stage pipelines, so that z3 sees
only the control, which is the same code in both builds."""

from __future__ import annotations


import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.numerics.sampling import INV_T_FRAC, PRNG_BITS
from magma_llama.stages import units
from magma_llama.stages.latency import SAMPLER_COIN_PIPELINE, SAMPLER_TERM_PIPELINE, SAMPLER_Z_PIPELINE
from magma_llama.stages.pipeline import Flowing
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


Z_FORMAL, TERM_FORMAL, COIN_FORMAL = ("z",), ("diff", "term"), ("coin",)   # the proof's pipelines


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
        n_in = ctrl_reg(m.UInt[clog2(vocab + 1)], "n_in")    # logits of this vector taken
        loaded = ctrl_reg(m.Bit, "loaded")                   # ... and all of their z written
        widx = ctrl_reg(m.UInt[ib], "widx")                  # the next z's address
        ridx = ctrl_reg(m.UInt[ib], "ridx")                  # the next read (SUM, SEARCH)
        issuing = ctrl_reg(m.Bit, "issuing")
        rd_valid = ctrl_reg(m.Bit, "rd_valid")               # the read register holds a word
        oidx = ctrl_reg(m.UInt[ib], "oidx")                  # the element of the next term out
        coin_fed = ctrl_reg(m.Bit, "coin_fed")
        coin_have = ctrl_reg(m.Bit, "coin_have")
        zmax = data_reg(m.SInt[ACT_BITS], "zmax")
        total = data_reg(m.UInt[tb], "total")
        coin = data_reg(m.UInt[tb], "coin", enable=True)
        gap = data_reg(m.SInt[tb + 1], "gap")               # coin - the running cdf
        state = data_reg(m.Bits[PRNG_BITS], "prng")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(m.UInt[ib], "o_data")

        in_load, in_sum = phase.O == LOAD, phase.O == SUM
        in_coin, in_search = phase.O == COIN, phase.O == SEARCH
        zpipe = Flowing(Z_FORMAL if formal else SAMPLER_Z_PIPELINE, "z_")
        tpipe = Flowing(TERM_FORMAL if formal else SAMPLER_TERM_PIPELINE, "t_")
        cpipe = Flowing(COIN_FORMAL if formal else SAMPLER_COIN_PIPELINE, "c_")

        # LOAD: z_i through its pipeline into the memory, the running max
        all_in = n_in.O == vocab
        i_ready = (in_load & ~all_in) if mutant != "accept_while_busy" else m.bit(1)
        load_fire = io.I.valid & i_ready & in_load & ~all_in
        cut = zpipe.feed(load_fire)
        if formal:
            z = cut("z", m.sint(io.I.data))
        else:
            prod = units.product(m.sint(io.I.data), units.s_(m.uint(io.inv_t), ACT_BITS), cut, "z")
            z = cut("z_sat", units.sat(units.rshr(prod, INV_T_FRAC), ACT_BITS))
        cut.done()
        write = zpipe.out_valid
        w_last = widx.O == (vocab - 1)
        new_max = (widx.O == 0) | (z > zmax.O)
        zmax.I @= m.mux([zmax.O, z], write & new_max)
        widx.I @= m.mux([widx.O, m.mux([widx.O + 1, m.uint(0, ib)], w_last)], write)
        to_sum = in_load & loaded.O & ~tpipe.busy            # every z written, the term pipeline empty
        loaded.I @= (loaded.O | (write & w_last)) & ~to_sum
        n_in.I @= m.mux([m.mux([n_in.O, n_in.O + 1], load_fire), m.uint(0, len(n_in.O))], to_sum)

        # SUM and SEARCH: a read a cycle, the word of element ridx one cycle later in the read
        # register, then its term through the term pipeline
        issue = issuing.O & (in_sum | in_search)
        r_last = ridx.O == (vocab - 1)
        zi = m.sint(memory("zmem", vocab, ACT_BITS, io.CLK, write, m.bits(widx.O), m.bits(z),
                           m.bits(ridx.O), registered=True))
        rd_valid.I @= issue
        cut = tpipe.feed(rd_valid.O)
        if formal:
            d = cut("diff", m.uint((m.bits(zi) ^ m.bits(zmax.O))[:4]))
            term = cut("term", m.zext_to(d, tb) + m.uint(1, tb))
        else:
            zi = cut("word", zi)                  # the RAM's output reaches no arithmetic directly
            diff = units.s_(zi, ACT_BITS + 1) - units.s_(zmax.O, ACT_BITS + 1)
            d = cut("diff", units.sat(diff, ACT_BITS))
            term = m.zext_to(units.exp_neg(d, cut=cut), tb)
        cut.done()
        tv = tpipe.out_valid
        o_last = oidx.O == (vocab - 1)
        first = oidx.O == 0
        total.I @= m.mux([total.O, m.mux([total.O, m.uint(0, tb)], first) + term], in_sum & tv)
        sum_done = in_sum & tv & o_last

        # COIN: one PRNG step per token, its product through the coin pipeline
        coin_go = in_coin & ~coin_fed.O
        r = xorshift32(state.O)
        cut = cpipe.feed(coin_go)
        if formal:
            coin_next = cut("coin", total.O >> 1)
        else:
            w = PRNG_BITS + tb
            rr, tt = cut("coin_r", m.uint(r), total.O)      # the xorshift reaches no multiplier directly
            wide = units.product(rr, tt, cut, "coin", w + 1)   # < 2^(32 + tb - 1)
            coin_next = m.uint(m.bits(wide)[PRNG_BITS:w])
        cut.done()
        load_when(coin, cpipe.out_valid, coin_next)
        state.I @= m.mux([m.mux([state.O, r], coin_go), io.seed], m.bit(io.RESET))
        to_search = in_coin & coin_have.O & ~o_valid.O        # the token will find O empty
        coin_fed.I @= (coin_fed.O | coin_go) & ~to_search
        coin_have.I @= (coin_have.O | cpipe.out_valid) & ~to_search

        # SEARCH: the first element whose running cdf passes the coin: cdf > coin is
        # coin - cdf < 0, so the register holds the gap and one subtraction's sign decides
        coin_s = m.sint(m.zext_to(coin.O, tb + 1))
        gap_next = m.mux([gap.O, coin_s], first) - m.sint(m.zext_to(term, tb + 1))
        below = m.bits(gap_next)[tb]
        hit = (below | (gap_next == m.sint(0, tb + 1))) if mutant == "cdf_ge" else below
        found = in_search & tv & (hit | o_last)
        gap.I @= m.mux([gap.O, gap_next], in_search & tv)

        step_out = (in_sum | in_search) & tv
        oidx.I @= m.mux([m.mux([oidx.O, m.mux([oidx.O + 1, m.uint(0, ib)], o_last)], step_out),
                         m.uint(0, ib)], found)
        ridx.I @= m.mux([m.mux([ridx.O, m.mux([ridx.O + 1, m.uint(0, ib)], r_last)], issue), m.uint(0, ib)], found)
        issuing.I @= m.mux([issuing.O & ~(issue & r_last) & ~found, m.bit(1)], to_sum | to_search)
        nxt = m.mux([phase.O, m.uint(SUM, 2)], to_sum)
        nxt = m.mux([nxt, m.uint(COIN, 2)], sum_done)
        nxt = m.mux([nxt, m.uint(SEARCH, 2)], to_search)
        nxt = m.mux([nxt, m.uint(LOAD, 2)], found)
        phase.I @= nxt
        o_valid.I @= (o_valid.O & ~io.O.ready) | found
        o_data.I @= m.mux([o_data.O, oidx.O], found)

        io.I.ready @= i_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            ph, wi, ri, oi, ni = (p.sig(x.O) for x in (phase, widx, ridx, oidx, n_in))
            ld, iss, rv, cf, ch, ov = (p.sig(x.O) for x in (loaded, issuing, rd_valid, coin_fed, coin_have, o_valid))
            p.assert_(f"{wi} < {vocab} && {ri} < {vocab} && {oi} < {vocab} && {ni} <= {vocab}")
            p.assert_(f"!{o['valid']} || {o['data']} < {vocab}")
            # every logit taken lands in the vector being loaded: logits in = vocab x vectors
            # loaded + this vector's count (counted modulo 2^8); its z are written or in the pipeline
            f_in = p.counter(i["fire"], 8, "logits")
            f_vec = p.counter(p.sig(to_sum), 8, "vectors")
            p.assert_(f"{f_in} == 8'd{vocab} * {f_vec} + {ni}")
            p.assert_(f"{ph} == {LOAD} || ({ni} == 0 && !{ld} && ({zpipe.count(p, 8)}) == 0)")
            p.assert_(f"({ld} ? 8'd{vocab} : 8'd0 + {wi}) + ({zpipe.count(p, 8)}) == 8'd0 + {ni}")
            p.assert_(f"!{ld} || {wi} == 0")
            # SUM and SEARCH: the reads issued are the terms out, the read register and the pipeline
            inside = f"({rv} ? 8'd1 : 8'd0) + {tpipe.count(p, 8)}"
            p.assert_(f"!({ph} == {SUM} || {ph} == {SEARCH}) || "
                      f"({iss} ? 8'd0 + {ri} : 8'd{vocab}) == 8'd0 + {oi} + {inside}")
            p.assert_(f"{ph} == {SUM} || {ph} == {SEARCH} || (!{iss} && {ri} == 0 && {oi} == 0)")
            p.assert_(f"{ph} != {COIN} || ({inside}) == 0")
            p.assert_(f"{ph} == {COIN} || (!{cf} && !{ch} && ({cpipe.count(p, 8)}) == 0)")
            p.assert_(f"!{ch} || {cf}")
            p.assert_(f"{ph} != {SEARCH} || !{ov}")
            # one token per vector: vectors loaded minus tokens out = the vector in work + the unread token
            f_out = p.counter(o["fire"], 8, "tokens")
            p.assert_(f"{f_vec} - {f_out} == ({ph} != {LOAD} ? 8'd1 : 8'd0) + ({ov} ? 8'd1 : 8'd0)")
            # covers: a vector in and its token out; the next vector loading while the token waits
            # in O; a coin waiting for O to empty
            p.cover(f"{o['fire']}")
            p.cover(f"{i['fire']} && {ov} && !{o['ready']} && {ni} != 0")
            p.cover(f"{ph} == {COIN} && {ch} && {ov} && !{o['ready']}")
            p.emit()


SAMPLER_EMITTED = 512     # stories260K's vocabulary
SAMPLER_PROVED = 3


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("sampler", f"Temperature sampler, vocab {SAMPLER_EMITTED} (emit) / {SAMPLER_PROVED} (proof, "
                      "cheap payload arithmetic): phases, one token per vector",
                      Sampler, (SAMPLER_EMITTED,), (SAMPLER_PROVED,), ("accept_while_busy",), depth=8, cover_depth=40)]
