"""Attention for one query head: scores, online softmax and the weighted sum of values,
bit-exact to `golden.stages.attention_head`.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `Q` (in): the head's RoPE'd query, `head_size` Q12.20 beats, kept in a register buffer;
- `K`, `V` (in): one beat per position t = 0..pos, each a whole row
  `Array[head_size, Bits[32]]` (the KV head's key / value at t), positions in order;
- `pos` (plain input): the current position; the head attends to pos + 1 positions.
  The controller holds it steady while a head runs (it may change only with no head in
  flight: after a token's last `O` beat, before the next token's first `Q`);
- `O` (out): the head's output, `head_size` Q12.20 beats.

Two pipeline stages per position.  Score: when the query is loaded and the score register
is free (or emptied this cycle), a `K` beat is taken and
s = sat32(mul_rshr_wide(sum_i rshr(q_i k_i, DOT_SHIFT), isq, 30 + F - DOT_SHIFT)) is
registered.  Softmax: a `V` beat is taken with the registered score and updates (M, l, O):
one exp_neg of -|s - M| gives either the rescale factor alpha (the max rises: p = 1) or p
(it does not: alpha = 1), so l = rshr(l alpha, 30) + p and O_i = rshr(O_i alpha, 30) +
rshr(p v_i, 30 - ATT_EXTRA) every position (alpha = 2^30 is exact); t = 0 starts from
l = O = 0 and M = s.  That is `numerics.functions.online_softmax_runs` position by
position.  After the last `V`: one cycle for recip(l), then one `O` beat per cycle,
sat32(mul_rshr_wide(O_i, mant, 30 - exp + ATT_EXTRA)).  The query buffer is released by
the last `K`, so the next head's `Q` (and its first `K`) load while this head finishes.

`formal=True` swaps the payload arithmetic (dot product, exp, reciprocal, wide multiplies)
for cheap stand-ins (`_CheapMath`) so that z3 sees the control, which is the same code."""

from __future__ import annotations


import magma as m

from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACC_BITS, ACT_BITS, ACT_FRAC, ATT_EXTRA, DOT_SHIFT, ONE_Q30, Q30
from magma_llama.stages.units import SCALE_BITS, pack_scale, unpack_scale
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, load_when, select, wrap_inc
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]
ACC = m.SInt[ACC_BITS]
P_BITS = 31                  # Q1.30 probabilities and alpha, unsigned (exp_neg's output)
EXP_W = 8                    # the Scale exponent of recip (units.EXP_BITS)

# ACC and idle are the phases of the softmax side; FIN computes recip(l); OUT sends O
ACC_PHASE, FIN_PHASE, OUT_PHASE = 0, 1, 2

MUTANTS = {
    "overwrite_score": "takes a K beat while the score register still holds an unused score",
    "drop_o": "lowers O.valid after one cycle even if the beat was not taken",
    "no_rescale": "does not rescale l and O when the running max rises (alpha taken as 1)",
}
# the mutants a proof can see (no_rescale changes only payload arithmetic: simulation)
CONTROL_MUTANTS = ("overwrite_score", "drop_o")


class _RealMath:
    """The datapath of golden.stages.attention, through the shared units."""

    def __init__(self, head_size: int, mutant):
        from magma_llama.stages import units
        self.u = units
        self.isq = T.inv_sqrt_q30(head_size)
        self.mutant = mutant

    def score(self, q, k):
        """s = sat32(round(sum rshr(q_i k_i, DOT_SHIFT) * isq / 2^(30 + F - DOT_SHIFT)))."""
        u = self.u
        dot = u.tree_sum([u.rshr(u.s_(qi, ACC_BITS) * u.s_(ki, ACC_BITS), DOT_SHIFT) for qi, ki in zip(q, k)])
        s = u.mul_rshr_wide(dot, m.uint(self.isq, P_BITS), Q30 + ACT_FRAC - DOT_SHIFT)
        return m.bits(u.sat(s, ACT_BITS))

    def update(self, first, s, mx, l, o, v):
        """(M, l, O) after one position: rescale by alpha if the max rises, add p and p v."""
        u = self.u
        w = ACT_BITS + 2
        diff = u.s_(s, w) - u.s_(mx, w)
        rise = ~first & (diff > m.sint(0, w))
        neg_abs = m.mux([m.mux([diff, -diff], rise), m.sint(0, w)], first)       # -|s - M|, 0 at t = 0
        e = u.exp_neg(u.sat(neg_abs, ACT_BITS), ACT_FRAC)
        one = m.uint(ONE_Q30, P_BITS)
        alpha = m.mux([one, e], rise)
        if self.mutant == "no_rescale":
            alpha = one
        p = m.mux([e, one], rise)
        zero = m.sint(0, ACC_BITS)
        l_base = m.mux([l, zero], first)
        l_new = u.mul_rshr_wide(l_base, alpha, Q30) + u.s_(p, ACC_BITS)
        o_new = []
        for oi, vi in zip(o, v):
            term = u.rshr(u.s_(vi, ACC_BITS) * u.s_(p, ACC_BITS), Q30 - ATT_EXTRA)
            o_new.append(u.mul_rshr_wide(m.mux([oi, zero], first), alpha, Q30) + term)
        return m.mux([mx, s], first | rise), l_new, o_new

    def finish(self, l):
        """recip(l) as a Scale (mant UInt[31], exp SInt[8]); l >= 2^30 (p = 1 at the max)."""
        mant, exp = self.u.recip(m.uint(m.bits(l)), Q30)
        return mant, m.sint(m.bits(exp))

    def out(self, oi, mant, exp):
        """sat32(round(O_i * mant / 2^(30 - exp + ATT_EXTRA)))."""
        u = self.u
        sh = m.sint(Q30 + ATT_EXTRA, EXP_W + 1) - u.s_(exp, EXP_W + 1)          # 42 .. 51 here
        return m.bits(u.sat(u.mul_rshr_wide(oi, mant, m.uint(m.bits(sh))), ACT_BITS))


class _CheapMath:
    """Formal stand-in: same widths, XOR and wiring instead of multipliers (the proof is
    about the control, which never looks at payloads)."""

    def __init__(self, head_size: int, mutant):
        pass

    def score(self, q, k):
        return q[0] ^ k[0]

    def update(self, first, s, mx, l, o, v):
        zero = m.sint(0, ACC_BITS)
        s64 = m.sint(m.sext_to(m.sint(s), ACC_BITS))
        l_new = m.mux([l, zero], first) ^ s64
        o_new = [m.mux([oi, zero], first) ^ m.sint(m.sext_to(m.sint(vi), ACC_BITS)) for oi, vi in zip(o, v)]
        return s, l_new, o_new

    def finish(self, l):
        b = m.bits(l)
        return m.uint(b[:P_BITS]), m.sint(b[P_BITS:P_BITS + EXP_W])

    def out(self, oi, mant, exp):
        return m.bits(oi)[:ACT_BITS] ^ m.zext_to(m.bits(mant), ACT_BITS)


class Attention(m.Generator2):
    def __init__(self, head_size: int, seq_len: int, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "attention")
        if head_size < 1 or seq_len < 1:
            raise ValueError(f"attention needs head_size, seq_len >= 1, got {head_size}, {seq_len}")
        hs = head_size
        self.name = f"Attention_hs{hs}_T{seq_len}" + (f"_mut_{mutant}" if mutant else "") + (
            "_formal" if formal else "")
        Row = m.Array[hs, ACT]
        pb = clog2(seq_len)
        self.io = io = clocked(Q=StreamIn(ACT), K=StreamIn(Row), V=StreamIn(Row), O=StreamOut(ACT),
                               pos=m.In(m.UInt[pb]))
        math = (_CheapMath if formal else _RealMath)(hs, mutant)

        # query side: the buffer fills, then serves every K of the head
        q_full = ctrl_reg(m.Bit, "q_full")
        q_idx = ctrl_reg(m.UInt[clog2(hs)], "q_idx")
        # score side
        k_pos = ctrl_reg(m.UInt[pb], "k_pos")
        s_full = ctrl_reg(m.Bit, "s_full")
        s_reg = data_reg(ACT, "score", enable=True)
        # softmax side
        phase = ctrl_reg(m.UInt[2], "phase")
        v_pos = ctrl_reg(m.UInt[pb], "v_pos")
        out_idx = ctrl_reg(m.UInt[clog2(hs)], "out_idx")
        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data", enable=True)
        mx = data_reg(ACT, "run_max", enable=True)
        l_acc = data_reg(ACC, "l_sum", enable=True)
        o_acc = [data_reg(ACC, f"o_acc{i}", enable=True) for i in range(hs)]
        inv = data_reg(m.Bits[SCALE_BITS], "inv_l", enable=True)      # 1 / l, a packed Scale

        # handshakes
        q_last = q_idx.O == (hs - 1)
        q_fire = io.Q.valid & ~q_full.O
        in_acc = phase.O == ACC_PHASE
        v_ready = s_full.O & in_acc
        v_fire = io.V.valid & v_ready
        k_ready = q_full.O & (~s_full.O | v_fire)
        if mutant == "overwrite_score":
            k_ready = q_full.O
        k_fire = io.K.valid & k_ready
        k_last = k_pos.O == io.pos
        v_first = v_pos.O == 0
        v_last = v_pos.O == io.pos
        in_out = phase.O == OUT_PHASE
        out_last = out_idx.O == (hs - 1)
        o_load = in_out & (~o_valid.O | io.O.ready)

        # query buffer
        qbuf = []
        for i in range(hs):
            r = data_reg(ACT, f"q{i}")
            r.I @= m.mux([r.O, io.Q.data], q_fire & (q_idx.O == i))
            qbuf.append(r.O)
        q_idx.I @= m.mux([q_idx.O, wrap_inc(q_idx.O, q_last)], q_fire)
        q_full.I @= m.mux([q_full.O | (q_fire & q_last), m.bit(0)], k_fire & k_last)

        # score stage
        k_pos.I @= m.mux([k_pos.O, wrap_inc(k_pos.O, k_last)], k_fire)
        s_full.I @= k_fire | (s_full.O & ~v_fire)
        load_when(s_reg, k_fire, math.score(qbuf, [io.K.data[i] for i in range(hs)]))

        # softmax stage
        mx_new, l_new, o_new = math.update(v_first, s_reg.O, mx.O, l_acc.O, [r.O for r in o_acc],
                                           [io.V.data[i] for i in range(hs)])
        load_when(mx, v_fire, mx_new)
        load_when(l_acc, v_fire, l_new)
        for r, nxt in zip(o_acc, o_new):
            load_when(r, v_fire, nxt)
        v_pos.I @= m.mux([v_pos.O, wrap_inc(v_pos.O, v_last)], v_fire)
        in_fin = phase.O == FIN_PHASE
        load_when(inv, in_fin, pack_scale(math.finish(l_acc.O)))

        # output
        oi = select([r.O for r in o_acc], out_idx.O)
        load_when(o_data, o_load, math.out(oi, *unpack_scale(inv.O)))
        o_valid.I @= o_load | (o_valid.O & ~io.O.ready & m.bit(mutant != "drop_o"))
        out_idx.I @= m.mux([out_idx.O, wrap_inc(out_idx.O, out_last)], o_load)
        nxt_phase = m.mux([phase.O, m.uint(FIN_PHASE, 2)], v_fire & v_last)
        nxt_phase = m.mux([nxt_phase, m.uint(OUT_PHASE, 2)], in_fin)
        nxt_phase = m.mux([nxt_phase, m.uint(ACC_PHASE, 2)], o_load & out_last)
        phase.I @= nxt_phase

        io.Q.ready @= ~q_full.O
        io.K.ready @= k_ready
        io.V.ready @= v_ready
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            self._props(io, hs, seq_len, pb, locals())

    @staticmethod
    def _props(io, hs, seq_len, pb, r):
        from magma_llama.formal.props import Props
        p = Props(io)
        _, k, v, o = p.monitor(io.Q), p.monitor(io.K), p.monitor(io.V), p.monitor(io.O)
        clk, rst = p.clk, p.rst
        pos = p.sig(io.pos)
        # the controller holds pos steady (here: for ever) at a legal position
        f_pos = p.anyconst(pb, "pos")
        p.assume(f"{pos} == {f_pos} && {f_pos} < {seq_len}")
        qf, qi, kp, sf, ph, vp, oix, ov = (p.sig(x.O) for x in (
            r["q_full"], r["q_idx"], r["k_pos"], r["s_full"], r["phase"], r["v_pos"], r["out_idx"], r["o_valid"]))
        # counters in range
        p.assert_(f"{qi} < {hs} && {oix} < {hs} && {kp} <= {pos} && {vp} <= {pos} && {ph} <= 2")
        p.assert_(f"!{qf} || {qi} == 0")
        p.assert_(f"{ph} == {ACC_PHASE} || {vp} == 0")
        p.assert_(f"{ph} == {OUT_PHASE} || {oix} == 0")
        # the score register is the only position between the K and V sides
        f_k = p.counter(k["fire"], 4, "k_in")
        f_v = p.counter(v["fire"], 4, "v_in")
        p.assert_(f"({f_k} - {f_v}) == ({sf} ? 4'd1 : 4'd0)")
        wp = pb + 1
        ahead = f"({wp}'d0 + {vp} + {sf})"
        p.assert_(f"{ahead} == ({wp}'d0 + {kp}) || ({ahead} == ({wp}'d0 + {pos} + 1'b1) && {kp} == 0)")
        # a K beat is only taken with the query loaded
        p.assert_(f"!{k['fire']} || {qf}")
        # every finished head owes hs O beats: owed = (beats not yet loaded) + o_valid
        f_owed = p.reg(8, "owed")
        p.lines.append(
            f"always @(posedge {clk}) if ({rst}) {f_owed} <= 0; else {f_owed} <= {f_owed} "
            f"+ (({v['fire']} && {vp} == {pos}) ? 8'd{hs} : 8'd0) - ({o['fire']} ? 8'd1 : 8'd0);")
        p.assert_(f"{f_owed} == ({ph} == {FIN_PHASE} ? 8'd{hs} : {ph} == {OUT_PHASE} ? 8'd{hs} - {oix} : 8'd0)"
                  f" + ({ov} ? 8'd1 : 8'd0)")
        # covers: a head completes (its last O beat leaves), at the largest position too
        f_o = p.counter(o["fire"], 4, "o_out")
        p.cover(f"{o['fire']} && {f_o} == {hs - 1}")
        p.cover(f"{o['fire']} && {f_o} == {hs - 1} && {pos} == {seq_len - 1}")
        p.emit()


# emitted: stories260K's head size and context; proved: 2-element heads, 4 positions
ATTENTION_EMITTED = (8, 512)
ATTENTION_PROVED = (2, 4)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("attention", "attention head, hs 8 T 512 (emit) / hs 2 T 4 with cheap payload arithmetic "
                      "(proof): score/softmax/output control",
                      Attention, ATTENTION_EMITTED, ATTENTION_PROVED, CONTROL_MUTANTS, depth=8, cover_depth=20)]
