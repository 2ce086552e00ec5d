"""RMSNorm: out_i = x_i * rsqrt(mean(x^2) + eps) * g_i, as `golden.stages.rmsnorm` with
`RmsNormConsts.make(dim)`, step for step.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `X` (in): the vector, `dim` Q12.20 activations, one per beat;
- `G` (in): the gain, `dim / lanes` beats of `lanes` x `GainBeat` {mant: GAIN_BITS,
  exp: EXP_BITS}, both signed (`golden.stages.GainVector`'s per-element mantissa and
  exponent), element j of a beat in the low bits: the packing of a gain port word;
- `O` (out): `dim / lanes` beats of `lanes` Q12.20 elements, the normalised vector.

Three phases.  LOAD: X.ready is high; each beat is stored in the vector buffer and
rshr(x^2, DOT_SHIFT) is added to the 64-bit sum of squares.  SCALE (one cycle):
r = scale_mul(rsqrt(ss + dim*eps, 2F - DOT_SHIFT), sqrt(dim)) is registered.  NORM:
`lanes` elements per cycle while G is valid and O is free: u = apply_scale(x_i, r), then
sat32(shift(u * g_mant, g_exp)) into the O register, taking one G beat.  After the last
beat the next vector loads (the buffer is in use until then).

The vector loads one element a cycle while the op before the norm writes it (in the
decoder: EMB, O, W2), but leaves `lanes` a cycle: a norm then costs dim / lanes cycles
instead of dim, and the decoder feeds the beats straight into MatVec's wide vector port.
The buffer is `lanes` memories (`stages/sram.memory`): element i is word i // lanes of
memory i % lanes, so a NORM beat reads its elements at one address.  The arithmetic is
the shared units of stages/units.py, one copy per lane; each phase's datapath is one
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
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when, wrap_inc
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
    def __init__(self, dim: int, lanes: int = 1, mutant=None, formal=False, cheap_payload=False):
        check_mutant(mutant, MUTANTS, "rmsnorm")
        if dim < 1:
            raise ValueError(f"rmsnorm needs dim >= 1, got {dim}")
        if lanes < 1 or lanes & (lanes - 1) or dim % lanes:
            raise ValueError(f"rmsnorm lanes must be a power of two dividing dim {dim}, got {lanes}")
        c = RmsNormConsts.make(dim)
        N, beats = lanes, dim // lanes
        self.name = f"RmsNorm_d{dim}" + (f"_n{N}" if N > 1 else "") + (f"_mut_{mutant}" if mutant else "") + (
            "_formal" if formal else "") + ("_cheap" if cheap_payload else "")
        self.io = io = clocked(X=StreamIn(ACT), G=StreamIn(m.Array[N, GainBeat]), O=StreamOut(m.Array[N, ACT]))

        phase = ctrl_reg(m.UInt[2], "phase", init=LOAD)
        load_idx = ctrl_reg(m.UInt[clog2(dim)], "load_idx")
        norm_idx = ctrl_reg(m.UInt[clog2(beats)], "norm_idx")
        ss = ctrl_reg(ACC, "ss", enable=True)
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(m.Bits[N * ACT_BITS], "o_data", enable=True)

        loading, scaling, norming = phase.O == LOAD, phase.O == SCALE, phase.O == NORM
        x_ready = loading | norming if mutant == "x_while_norm" else loading
        x_fire = io.X.valid & x_ready
        o_free = ~o_valid.O | io.O.ready
        step = norming & io.G.valid & o_free
        last_load = load_idx.O == (dim - 2 if mutant == "short_load" and dim > 1 else dim - 1)
        last_norm = norm_idx.O == (beats - 1)

        # the vector buffer: element i at word i // N of memory i % N, written in LOAD, read a
        # word (N elements) a cycle in NORM
        k = N.bit_length() - 1
        ab = len(norm_idx.O)
        waddr = m.zext_to(m.bits(load_idx.O)[k:], ab) if k < len(load_idx.O) else m.bits(0, ab)
        xs = [memory(f"xbuf{j}" if N > 1 else "xbuf", 1 << ab, ACT_BITS, io.CLK,
                     x_fire & (load_idx.O[:k] == j if k else m.bit(1)), waddr, io.X.data, m.bits(norm_idx.O))
              for j in range(N)]

        # payload arithmetic
        r_reg = data_reg(m.Bits[units.SCALE_BITS], "r_scale", enable=True)
        r_mant, r_exp = units.unpack_scale(r_reg.O)
        g = io.G.data
        if cheap_payload:
            ss_add = m.sext_to(m.sint(io.X.data), ACC_BITS)
            scale = (m.uint(m.bits(ss.O)[:units.MANT_BITS]), m.sint(m.bits(ss.O)[32:32 + units.EXP_BITS]))
            outs = [x ^ m.zext_to(g[j].mant, ACT_BITS) ^ m.zext_to(m.bits(r_mant), ACT_BITS) for j, x in enumerate(xs)]
        else:
            x64 = m.sext_to(m.sint(io.X.data), ACC_BITS)
            ss_add = units.rshr(x64 * x64, DOT_SHIFT)
            eps = 0 if mutant == "no_eps" else c.eps_term
            r_raw = units.rsqrt(m.uint(m.bits(ss.O + m.sint(eps, ACC_BITS))), 2 * c.frac - DOT_SHIFT)
            sqrt_dim = (m.uint(c.sqrt_dim[0], units.MANT_BITS), m.sint(c.sqrt_dim[1], units.EXP_BITS))
            scale = units.scale_mul(r_raw, sqrt_dim)
            outs = []
            for j, x in enumerate(xs):
                u = units.apply_scale(x, r_mant, r_exp, ACT_BITS)
                prod = m.sext_to(u, ACC_BITS) * m.sext_to(m.sint(g[j].mant), ACC_BITS)
                outs.append(m.bits(units.sat(units.shift_each(prod, m.sint(g[j].exp)), ACT_BITS)))
        load_when(r_reg, scaling, units.pack_scale(scale))

        zero = m.uint(0, len(load_idx.O))
        load_idx.I @= m.mux([load_idx.O, m.mux([load_idx.O + 1, zero], last_load)], x_fire & loading)
        norm_idx.I @= m.mux([norm_idx.O, wrap_inc(norm_idx.O, last_norm)], step)
        load_when(ss, (x_fire & loading) | norming, m.mux([ss.O + ss_add, m.sint(0, ACC_BITS)], norming))
        nxt = m.mux([phase.O, m.uint(SCALE, 2)], x_fire & loading & last_load)
        nxt = m.mux([nxt, m.uint(NORM, 2)], scaling)
        phase.I @= m.mux([nxt, m.uint(LOAD, 2)], step & last_norm)
        o_valid.I @= step | (o_valid.O & ~io.O.ready)
        load_when(o_data, step, m.concat(*outs))

        io.X.ready @= x_ready
        io.G.ready @= norming & o_free
        io.O.valid @= o_valid.O
        for j in range(N):
            io.O.data[j] @= o_data.O[j * ACT_BITS:(j + 1) * ACT_BITS]

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            x, g, o = p.monitor(io.X), p.monitor(io.G), p.monitor(io.O)
            ph, li, ni = p.sig(phase.O), p.sig(load_idx.O), p.sig(norm_idx.O)
            p.assert_(f"{ph} <= {NORM}")
            p.assert_(f"{li} < {dim}")
            p.assert_(f"{ni} < {beats}")
            p.assert_(f"{ph} == {LOAD} || {li} == 0")
            p.assert_(f"{ph} == {NORM} || {ni} == 0")
            # X beats in minus elements out is what the buffer holds: the loaded count,
            # dim while scaling, the elements not yet sent while normalising (N a step; the step
            # counter is k bits narrower, so N * steps wraps with the X count)
            n = clog2(dim) + 3
            f_x = p.counter(x["fire"], n, "x_in")
            f_step = p.counter(p.sig(step), n - k, "steps")
            f_g = p.counter(g["fire"], n - k, "g_in")
            f_o = p.counter(o["fire"], n - k, "o_out")
            sent = f"(({n}'d0 + {ni}) << {k})"
            steps_n = f"(({n}'d0 + {f_step}) << {k})"
            held = f"({ph} == {LOAD} ? {n}'d0 + {li} : {ph} == {SCALE} ? {n}'d{dim} : {n}'d{dim} - {sent})"
            p.assert_(f"({f_x} - {steps_n}) == {held}")
            # one G beat and one O beat per step
            p.assert_(f"{f_g} == {f_step}")
            p.assert_(f"({f_step} - {f_o}) == ({o['valid']} ? {n - k}'d1 : {n - k}'d0)")
            # covers: a whole vector delivered and the next one loading; O stalled with G waiting
            done = p.sticky(f"{o['fire']} && {ph} == {LOAD}", "vector_done")
            p.cover(f"{done} && {x['fire']}")
            p.cover(f"{o['valid']} && !{o['ready']} && {g['valid']} && {ph} == {NORM}")
            p.emit()


# emitted: stories260K's dim 64; proved: dim 3 with the cheap payload.  The wide form: the
# decoder's at L = 64, w16 (32 lanes), proved at dim 4 with 2 lanes
RMSNORM_EMITTED = 64
RMSNORM_PROVED = 3
RMSNORM_WIDE_EMITTED = (64, 32)
RMSNORM_WIDE_PROVED = (4, 2)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    cheap = {"cheap_payload": True}
    return [stage_row("rmsnorm", "RMSNorm, dim 64 (emit) / dim 3 with a cheap payload (proof): "
                      "load, scale, one element per cycle",
                      RmsNorm, (RMSNORM_EMITTED,), (RMSNORM_PROVED,), CONTROL_MUTANTS, depth=6, formal_kwargs=cheap),
            stage_row("rmsnorm_wide", "RMSNorm with lanes, dim 64 x 32 lanes (emit) / dim 4 x 2 lanes with a cheap "
                      "payload (proof): load one element a cycle, leave a beat of lanes a cycle",
                      RmsNorm, RMSNORM_WIDE_EMITTED, RMSNORM_WIDE_PROVED, CONTROL_MUTANTS, depth=6,
                      formal_kwargs=cheap)]
