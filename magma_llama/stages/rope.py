"""RoPE: rotates the pairs (v0, v1) of each head of q or k by pos * freq_i.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `I` (in): the elements of a vector (q or k) in vector order, one Q12.20 per beat; a
  head's pair i is its elements 2i and 2i+1.  A vector is any whole number of heads:
  the element counter wraps at `head_size`, so the stage never needs the vector length.
- `pos` (plain input): the token position, held steady by the controller from a
  vector's first `I` beat to its last; it is read when an even element is accepted.
- `O` (out): the rotated elements in the same order, one per beat.

cos and sin (signed Q2.30) come from `numerics.tables.rope_tables(head_size, seq_len)`,
looked up by (pos, pair index within the head) in two block-RAM ROMs (`sram.Rom`), read
when v0 is taken, so the words are in the ROMs' read registers when v1 arrives.  When v1
is taken the pair enters a pipeline (`stages/latency.ROPE_PIPELINE`, a `stages.pipeline.Stalled`):
v0, v1, cos and sin registered, the four products' DSP-tile partial products registered,
the products, then v0*c - v1*s and v0*s + v1*c (`golden.stages.rope`); out0 =
sat32(rshr(v0*c - v1*s, 30)) goes to the `O` register and out1 = sat32(rshr(v0*s + v1*c,
30)) to a spare register that follows it, when the spare is empty and `O` is free this
cycle.  v0 is always accepted (its register is free whenever an even element is
expected); v1 when the pipeline's first stage can take the pair, which at full rate is
every time, so the stage takes and gives one element per cycle; out0 is valid
`ROPE_LATENCY` cycles after v1's transfer.  The formal build (`formal=True`) carries the
identity as payload (out0 = v0, out1 = v1, through the same stages; no ROM) with the
same control code, so the solver sees no multiplier.
"""

from __future__ import annotations


import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.numerics.tables import ROPE_FRAC, rope_tables
from magma_llama.stages import units
from magma_llama.stages.latency import ROPE_PIPELINE
from magma_llama.stages.pipeline import Stalled, hold
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]
TRIG_BITS = ROPE_FRAC + 2          # signed Q2.30
PROD_BITS = 64                     # |v*c| <= 2^61, a sum of two <= 2^62: exact in 64 bits

# control mutants (the formal build must give a counterexample) ...
CONTROL_MUTANTS = {
    "v1_while_full": "moves a pair into O while the spare still holds the previous out1 (overwrites it)",
    "pair_order": "sends out1 before out0",
    "wrap_early": "the element counter wraps at head_size - 2 (pairs straddle heads)",
}
# ... and payload mutants, caught by the bit-exact simulation
MUTANTS = CONTROL_MUTANTS | {
    "sin_sign": "rotates the other way (the sign of sin swapped)",
}


def _lookup(head_size: int, seq_len: int, pos, pair, clk, read):
    """cos and sin of (pos, pair) as SInt[TRIG_BITS], read in the cycles where `read` is high and
    held after: two block-RAM ROMs (sram.Rom) of seq_len * head_size/2 entries, pos-major
    (entry pos * head_size/2 + pair)."""
    from magma_llama.stages.sram import Rom
    cos, sin = rope_tables(head_size, seq_len)
    half = head_size // 2
    n = seq_len * half
    ab = clog2(n)
    wide = clog2(n) + 1
    addr = m.uint(m.zext_to(pos, wide)) * m.uint(half, wide) + m.uint(m.zext_to(m.uint(pair), wide))
    out = []
    for stem, table in (("rope_cos", cos), ("rope_sin", sin)):
        rom = Rom(stem, table.ravel(), TRIG_BITS)(name=f"{stem}_rom")
        rom.CLK @= clk
        rom.RE @= read
        rom.RADDR @= m.bits(addr)[:ab]
        out.append(m.sint(rom.RDATA))
    return tuple(out)


def _rotate(v0, v1, c, s, staged):
    """(a, b) = (v0*c - v1*s, v0*s + v1*c) of golden.stages.rope for one pair, exact in
    PROD_BITS, through ROPE_PIPELINE's "partials", "products" and "sums" registers
    (`staged(value, name, stage)`); the caller rounds and saturates them into O."""
    pairs = ((v0, c), (v1, s), (v0, s), (v1, c))
    parts = [[(sh, staged(p, f"pp{i}_{j}", "partials")) for j, (sh, p) in enumerate(units.partial_products(x, y))]
             for i, (x, y) in enumerate(pairs)]
    prods = [staged(units.sum_partials(pp, PROD_BITS), f"prod{i}", "products") for i, pp in enumerate(parts)]
    # only bits ROPE_FRAC - 1 and up reach the result (see _finish): the registers hold those
    return tuple(staged(m.sint(m.bits(x)[ROPE_FRAC - 1:]), name, "sums")
                 for x, name in ((prods[0] - prods[1], "sum_a"), (prods[2] + prods[3], "sum_b")))


def _finish(top):
    """sat32(rshr(x, ROPE_FRAC)) from top = x >> (ROPE_FRAC - 1): rshr(x, s) = floor((x + 2^(s-1)) /
    2^s) = rshr(top, 1), through the shared units."""
    return m.bits(units.sat(units.rshr(top, 1), ACT_BITS))


class Rope(m.Generator2):
    def __init__(self, head_size: int, seq_len: int, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "rope")
        if head_size < 2 or head_size % 2 or seq_len < 1:
            raise ValueError(f"rope needs an even head_size >= 2 and seq_len >= 1, got {head_size}, {seq_len}")
        self.name = f"Rope_hs{head_size}_t{seq_len}" + (f"_mut_{mutant}" if mutant else "") + (
            "_formal" if formal else "")
        self.io = io = clocked(I=StreamIn(ACT), pos=m.In(m.UInt[clog2(seq_len)]), O=StreamOut(ACT))

        idx = ctrl_reg(m.UInt[clog2(head_size)], "idx")       # element index within the head
        v0 = data_reg(ACT, "v0")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data")
        s_valid = ctrl_reg(m.Bit, "spare_valid")
        s_data = data_reg(ACT, "spare_data")

        has_v0 = idx.O[0]
        o_free = ~o_valid.O | io.O.ready
        # a pair leaves the pipeline into O (out0) and the spare (out1) when the spare is empty
        # and O is free this cycle
        out_free = (~s_valid.O & o_free) if mutant != "v1_while_full" else o_free
        pipe = Stalled(ROPE_PIPELINE, out_free)
        i_ready = ~has_v0 | pipe.free[0]          # v0 always; v1 when the pair can enter "pair"
        fire = io.I.valid & i_ready
        fire_v1 = fire & has_v0
        moves = pipe.feed(fire_v1)
        leave = moves[-1]
        stage_of = {st: moves[k] for k, st in enumerate(ROPE_PIPELINE)}

        def staged(value, name, stage):
            return hold(value, name, stage_of[stage])

        if formal:
            # cheap payload for the solver: the identity through the same stages (the control
            # is the same code)
            p0, p1 = staged(v0.O, "pair_v0", "pair"), staged(io.I.data, "pair_v1", "pair")
            stage_regs = {"pair": (p0, p1)}
            for st in ROPE_PIPELINE[1:]:
                p0, p1 = staged(p0, f"{st}_v0", st), staged(p1, f"{st}_v1", st)
                stage_regs[st] = (p0, p1)
            out0, out1 = m.bits(p0), m.bits(p1)
        else:
            # cos and sin are read when v0 is taken (its pair is v1's), ready when v1 arrives
            pair = idx.O[1:] if head_size > 2 else m.uint(0, 1)
            c, s = _lookup(head_size, seq_len, io.pos, pair, io.CLK, fire & ~has_v0)
            if mutant == "sin_sign":
                s = -s
            a, b = _rotate(staged(m.sint(v0.O), "pair_v0", "pair"), staged(m.sint(io.I.data), "pair_v1", "pair"),
                           staged(c, "pair_c", "pair"), staged(s, "pair_s", "pair"), staged)
            out0, out1 = _finish(a), _finish(b)
        if mutant == "pair_order":
            out0, out1 = out1, out0

        wrap = head_size - (2 if mutant == "wrap_early" else 1)
        last = idx.O == wrap
        idx.I @= m.mux([idx.O, m.mux([idx.O + 1, m.uint(0, len(idx.O))], last)], fire)
        v0.I @= m.mux([v0.O, io.I.data], fire & ~has_v0)
        move = s_valid.O & o_free                      # the spare's out1 follows out0
        o_valid.I @= leave | move | (o_valid.O & ~io.O.ready)
        o_data.I @= m.mux([m.mux([o_data.O, s_data.O], move), out0], leave)
        s_valid.I @= leave | (s_valid.O & ~o_free)
        s_data.I @= m.mux([s_data.O, out1], leave)

        io.I.ready @= i_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            ix, ov, sv = p.sig(idx.O), p.sig(o_valid.O), p.sig(s_valid.O)
            bits = max(4, clog2(head_size) + 2)
            # every element in comes out once, in order (identity payload): the tracked beat
            t = p.track(i, o, bits)
            f_in, f_out, f_idx, f_data = t["in"], t["out"], t["idx"], t["data"]
            # (the 1-bit terms are widened to the counters' width by the comparison)
            hv = p.sig(has_v0)
            p.assert_(f"({f_in} - {f_out}) == ({ov} + {sv} + {hv} + {pipe.count(p, bits, 2)})")
            p.assert_(f"{ix} < {head_size}")
            p.assert_(f"!{sv} || {ov}")
            # the counter is the input count modulo head_size (head_size a power of two here)
            if head_size & (head_size - 1) == 0:
                p.assert_(f"{ix} == {f_in}[{clog2(head_size) - 1}:0]")
            # where the tracked element waits: O, then the spare, then the v0 register
            p.assert_(f"!({ov} && {f_out} == {f_idx}) || {p.sig(o_data.O)} == {f_data}")
            p.assert_(f"!({sv} && {f_out} + 1'b1 == {f_idx}) || {p.sig(s_data.O)} == {f_data}")
            p.assert_(f"!({hv} && {f_in} - 1'b1 == {f_idx}) || {p.sig(v0.O)} == {f_data}")
            # ... or a stage of the pipeline: a pair's out0 is the element after those ahead of
            # it (O, the spare and the later stages' pairs)
            ahead = f"{f_out} + {ov} + {sv}"
            for k in reversed(range(len(ROPE_PIPELINE))):
                st, vk = ROPE_PIPELINE[k], p.sig(pipe.valid[k].O)
                for j, name in enumerate(("v0", "v1")):
                    reg = p.sig(stage_regs[st][j])
                    p.assert_(f"!({vk} && ({ahead}) + {bits}'d{j} == {f_idx}) || {reg} == {f_data}")
                ahead = f"{ahead} + ({vk} ? {bits}'d2 : {bits}'d0)"
            # covers: two whole heads out; the spare waiting behind a stalled O
            p.cover(f"{o['fire']} && {f_out} == {2 * head_size - 1}")
            p.cover(f"{sv} && {ov} && !{o['ready']} && {i['valid']}")
            p.emit()


# proofs: head size 4, 4 positions (identity payload); emission: stories260K (head size 8, seq_len 512)
ROPE_PROVED = (4, 4)
ROPE_EMITTED = (8, 512)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("rope", "RoPE, head size 8 x 512 positions (emit) / 4 x 4 (proof, identity payload): "
                      "order, one out per in, pairs within heads",
                      Rope, ROPE_EMITTED, ROPE_PROVED, CONTROL_MUTANTS, depth=6, cover_depth=20)]
