"""RMSNorm: out_i = x_i * rsqrt(mean(x^2) + eps) * g_i, as `golden.stages.rmsnorm` with
`RmsNormConsts.make(dim)`, step for step.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `X` (in): the vector, `dim` Q12.20 activations, one per beat;
- `G` (in): the gain, `dim` beats of `GainBeat` {mant: GAIN_BITS, exp: EXP_BITS}, both
  signed (`golden.stages.GainVector`'s per-element mantissa and exponent);
- `O` (out): `dim` Q12.20 beats, the normalised vector.

Three phases.  LOAD: X.ready is high; each beat is stored in the vector buffer (a dim x 32
memory) and rshr(x^2, DOT_SHIFT) is added to the 64-bit sum of squares.  SCALE (one
cycle): r = scale_mul(rsqrt(ss + dim*eps, 2F - DOT_SHIFT), sqrt(dim)) is registered.
NORM: one element per cycle while G is valid and O is free: u = apply_scale(x_i, r),
then sat32(shift(u * g_mant, g_exp)) into the O register, taking one G beat.  After
the last element the next vector loads (the buffer is in use until then).  The
arithmetic is the shared units of stages/units.py; each phase's datapath is one
combinational stage (simulation-first).

The formal build may replace the payload arithmetic (`cheap_payload=True`): the sum,
the scale and the per-element product become small bit operations, so z3 proves the
control, which is the same code either way."""

from __future__ import annotations


import magma as m

from magma_llama.golden.stages import RmsNormConsts
from magma_llama.numerics.fixed import ACC_BITS, ACT_BITS, DOT_SHIFT
from magma_llama.numerics.weights import EXP_BITS, GAIN_BITS
from magma_llama.stages import units
from magma_llama.stages.sram import memory
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]
ACC = m.SInt[ACC_BITS]
LOAD, SCALE, NORM = 0, 1, 2

GainBeat = m.Product.from_fields("GainBeat", {"mant": m.Bits[GAIN_BITS], "exp": m.Bits[EXP_BITS]})

MUTANTS = {
    # control (formal counterexamples)
    "short_load": "ends the load one element early (off by one in the load counter)",
    "x_while_norm": "keeps X.ready high while normalising, overwriting the buffer",
    # arithmetic (caught in simulation only: the proof is about control)
    "no_eps": "drops the dim*eps term from the sum of squares",
}
CONTROL_MUTANTS = ("short_load", "x_while_norm")


class RmsNorm(m.Generator2):
    def __init__(self, dim: int, mutant=None, formal=False, cheap_payload=False):
        check_mutant(mutant, MUTANTS, "rmsnorm")
        if dim < 1:
            raise ValueError(f"rmsnorm needs dim >= 1, got {dim}")
        c = RmsNormConsts.make(dim)
        self.name = f"RmsNorm_d{dim}" + (f"_mut_{mutant}" if mutant else "") + (
            "_formal" if formal else "") + ("_cheap" if cheap_payload else "")
        self.io = io = clocked(X=StreamIn(ACT), G=StreamIn(GainBeat), O=StreamOut(ACT))

        phase = ctrl_reg(m.UInt[2], "phase", init=LOAD)
        load_idx = ctrl_reg(m.UInt[clog2(dim)], "load_idx")
        norm_idx = ctrl_reg(m.UInt[clog2(dim)], "norm_idx")
        ss = ctrl_reg(ACC, "ss", enable=True)
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data", enable=True)

        loading, scaling, norming = phase.O == LOAD, phase.O == SCALE, phase.O == NORM
        x_ready = loading | norming if mutant == "x_while_norm" else loading
        x_fire = io.X.valid & x_ready
        o_free = ~o_valid.O | io.O.ready
        step = norming & io.G.valid & o_free
        last_load = load_idx.O == (dim - 2 if mutant == "short_load" and dim > 1 else dim - 1)
        last_norm = norm_idx.O == (dim - 1)

        # the vector buffer (stages/sram.memory), written in LOAD, read in element order in NORM
        x_i = memory("xbuf", 1 << len(load_idx.O), ACT_BITS, io.CLK, x_fire, m.bits(load_idx.O), io.X.data,
                     m.bits(norm_idx.O))

        # payload arithmetic
        r_reg = data_reg(m.Bits[units.SCALE_BITS], "r_scale", enable=True)
        r_mant, r_exp = units.unpack_scale(r_reg.O)
        if cheap_payload:
            ss_add = m.sext_to(m.sint(io.X.data), ACC_BITS)
            scale = (m.uint(m.bits(ss.O)[:units.MANT_BITS]), m.sint(m.bits(ss.O)[32:32 + units.EXP_BITS]))
            out = x_i ^ m.zext_to(io.G.data.mant, ACT_BITS) ^ m.zext_to(m.bits(r_mant), ACT_BITS)
        else:
            x64 = m.sext_to(m.sint(io.X.data), ACC_BITS)
            ss_add = units.rshr(x64 * x64, DOT_SHIFT)
            eps = 0 if mutant == "no_eps" else c.eps_term
            r_raw = units.rsqrt(m.uint(m.bits(ss.O + m.sint(eps, ACC_BITS))), 2 * c.frac - DOT_SHIFT)
            sqrt_dim = (m.uint(c.sqrt_dim[0], units.MANT_BITS), m.sint(c.sqrt_dim[1], units.EXP_BITS))
            scale = units.scale_mul(r_raw, sqrt_dim)
            u = units.apply_scale(x_i, r_mant, r_exp, ACT_BITS)
            prod = m.sext_to(u, ACC_BITS) * m.sext_to(m.sint(io.G.data.mant), ACC_BITS)
            out = units.sat(units.shift_each(prod, m.sint(io.G.data.exp)), ACT_BITS)
        load_when(r_reg, scaling, units.pack_scale(scale))

        zero = m.uint(0, len(load_idx.O))
        load_idx.I @= m.mux([load_idx.O, m.mux([load_idx.O + 1, zero], last_load)], x_fire & loading)
        norm_idx.I @= m.mux([norm_idx.O, m.mux([norm_idx.O + 1, zero], last_norm)], step)
        load_when(ss, (x_fire & loading) | norming, m.mux([ss.O + ss_add, m.sint(0, ACC_BITS)], norming))
        nxt = m.mux([phase.O, m.uint(SCALE, 2)], x_fire & loading & last_load)
        nxt = m.mux([nxt, m.uint(NORM, 2)], scaling)
        phase.I @= m.mux([nxt, m.uint(LOAD, 2)], step & last_norm)
        o_valid.I @= step | (o_valid.O & ~io.O.ready)
        load_when(o_data, step, m.bits(out))

        io.X.ready @= x_ready
        io.G.ready @= norming & o_free
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            x, g, o = p.monitor(io.X), p.monitor(io.G), p.monitor(io.O)
            ph, li, ni = p.sig(phase.O), p.sig(load_idx.O), p.sig(norm_idx.O)
            p.assert_(f"{ph} <= {NORM}")
            p.assert_(f"{li} < {dim}")
            p.assert_(f"{ni} < {dim}")
            p.assert_(f"{ph} == {LOAD} || {li} == 0")
            p.assert_(f"{ph} == {NORM} || {ni} == 0")
            # X beats in minus elements out is what the buffer holds: the loaded count,
            # dim while scaling, the elements not yet sent while normalising
            n = clog2(dim) + 3
            f_x = p.counter(x["fire"], n, "x_in")
            f_step = p.counter(p.sig(step), n, "steps")
            f_g = p.counter(g["fire"], n, "g_in")
            f_o = p.counter(o["fire"], n, "o_out")
            held = f"({ph} == {LOAD} ? {n}'d0 + {li} : {ph} == {SCALE} ? {n}'d{dim} : {n}'d{dim} - {ni})"
            p.assert_(f"({f_x} - {f_step}) == {held}")
            # one G beat per element, one O beat per element
            p.assert_(f"{f_g} == {f_step}")
            p.assert_(f"({f_step} - {f_o}) == ({o['valid']} ? {n}'d1 : {n}'d0)")
            # covers: a whole vector delivered and the next one loading; O stalled with G waiting
            done = p.sticky(f"{o['fire']} && {ph} == {LOAD}", "vector_done")
            p.cover(f"{done} && {x['fire']}")
            p.cover(f"{o['valid']} && !{o['ready']} && {g['valid']} && {ph} == {NORM}")
            p.emit()


# emitted: stories260K's dim 64; proved: dim 3 with the cheap payload
RMSNORM_EMITTED = 64
RMSNORM_PROVED = 3


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("rmsnorm", "RMSNorm, dim 64 (emit) / dim 3 with a cheap payload (proof): "
                      "load, scale, one element per cycle",
                      RmsNorm, (RMSNORM_EMITTED,), (RMSNORM_PROVED,), CONTROL_MUTANTS, depth=6, formal_kwargs={"cheap_payload": True})]
