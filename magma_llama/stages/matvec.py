"""MatVec engine: y = W x for one matrix, the compute engine every projection shares.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `X` (in): input vectors, Q12.20 activations, one per beat.  The engine has two vector
  banks: one serves the matrix being computed while the next vector loads into the
  other, so a projection whose input is produced during the previous one (W2's, by
  SwiGLU during W3) starts without a load gap.  X.ready is high while a bank is free.
  The banks live in L lane memories (`stages/sram.memory`, one write and one combinational
  read port each): element i of bank k is word {k, i // L} of lane i % L, so a beat
  reads its L elements at one address, and loading writes one word a cycle.  (Registers
  with a per-element write enable and an L-way read mux cost the simulator a compare and
  a select per element per cycle; the memories cost one write and L reads.)
- `W` (in): the weight stream of `numerics.weights.weight_beats(q, L)`: per beat
  `mant[L]` (signed N-bit mantissas) and `exp[L]` (each lane's group exponent,
  signed EXP_BITS), row by row, ceil(cols / L) beats a row, the last one padded.
- `Y` (out): one Q12.20 activation per row, `rows` beats per matrix.

Per beat each lane forms p = m * x, shifts it by k = e + MATVEC_EXTRA (left, or right
rounding half up) into 64 bits, and the L terms are added to a 64-bit accumulator; after
a row's last beat the accumulator is rounded by MATVEC_EXTRA and saturated to ACT_BITS.
That is `golden.stages.matvec`, term by term.

The arithmetic is a pipeline that never stalls, cut where an FPGA needs registers
(`stages/latency.MATVEC_PIPELINE`): the lane memories are read with registered outputs (block RAM), each
product is formed from DSP-tile-sized (18 x 18) partial products that are registered
before they are added, the shifter is two registered halves, and the adder tree has
`ADD_LEVELS` adders between registers.  Results leave through a FIFO of `y_depth` rows
(`Y` is its output); a row's last beat is taken only while the FIFO has room for every
row already in the pipeline (a credit count, `owed`), so nothing inside ever waits and
`W.ready` does not depend on `Y.ready`.  `W.ready` is itself a flip-flop, worked out a
cycle ahead from the control registers' next values (and so are X.ready, the row's-last-beat flag and Y.valid),
so a W transfer's fan-out starts at a register.  One W beat is taken per cycle while W is valid,
except on a row's last beat when the FIFO has no room, and for one cycle when a matrix
starts on a vector that has already served one (the bank is released, or kept with
`keep_x`).  `latency(lanes)` is the cycles from a row's last W transfer to its Y beat
(the perf model reads it)."""

from __future__ import annotations

import functools

import magma as m

from magma_llama.numerics.fixed import ACC_BITS, ACT_BITS, ACT_MAX, ACT_MIN, MATVEC_EXTRA
from magma_llama.numerics.weights import EXP_BITS, EXP_MAX, EXP_MIN, WEIGHT_FORMATS
from magma_llama.stages.latency import ADD_LEVELS, MATVEC_PIPELINE, matvec_latency, matvec_y_depth, tree_stages
from magma_llama.stages.pipeline import hold
from magma_llama.stages.sram import memory
from magma_llama.stages.units import partial_products, sum_partials
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg
from magma_llama.streams.types import StreamIn, StreamOut, clog2

ACT = m.Bits[ACT_BITS]
ACC = m.SInt[ACC_BITS]
# k = e + MATVEC_EXTRA for any EXP_BITS exponent (the image keeps e in [EXP_MIN, EXP_MAX])
K_BITS = EXP_BITS + 1
# the shifter covers the shifts of the exponents an image may hold, |k| <= 48: a 6-bit amount
# (a 64-position shifter would only add the all-zero results of exponents no image has)
SHIFT_BITS = max(EXP_MAX + MATVEC_EXTRA, -(EXP_MIN + MATVEC_EXTRA)).bit_length()
assert SHIFT_BITS <= K_BITS and (1 << SHIFT_BITS) <= ACC_BITS


@functools.lru_cache(maxsize=None)
def WeightBeat(lanes: int, bits: int):
    """Payload of the W stream: mant[lanes] (N bits) and exp[lanes] (EXP_BITS), signed."""
    return m.Product.from_fields(f"WeightBeat_L{lanes}_w{bits}",
                                 {"mant": m.Array[lanes, m.Bits[bits]],
                                  "exp": m.Array[lanes, m.Bits[EXP_BITS]]})


def beats_per_row(cols: int, lanes: int) -> int:
    return -(-cols // lanes)


def latency(lanes: int) -> int:
    """Cycles from a row's last W transfer to its Y beat's first valid cycle (stages/latency.py)."""
    return matvec_latency(lanes)


def _shift_amount(exp, extra: int = MATVEC_EXTRA):
    """(neg, amount) of k = exp + extra: a left shift by k, or (neg) a right shift by
    -k - 1 = ~k before the rounding step; SHIFT_BITS bits (the W stream's contract)."""
    assert max(EXP_MAX + extra, -(EXP_MIN + extra) - 1) < (1 << SHIFT_BITS) and extra < (1 << (K_BITS - 2))
    k = m.sext_to(m.sint(exp), K_BITS) + m.sint(extra, K_BITS)
    neg = k[K_BITS - 1]
    amount = m.mux([m.bits(k), m.bits(~k)], neg)[:SHIFT_BITS]
    return neg, m.uint(amount)


def _shift(p, neg, amount):
    """p << amount, or p >> amount (arithmetic) when neg: SInt[ACC_BITS]."""
    a = m.sint(m.zext_to(amount, ACC_BITS))
    return m.mux([p << a, p >> a], neg)


def _round_half(u, neg):
    """The term of a right shift by s from u = p >> (s - 1): floor((u + 1) / 2) = (u >> 1) + u[0]."""
    half = (u >> m.sint(1, ACC_BITS)) + m.sint(m.zext_to(m.bits(u)[:1], ACC_BITS))
    return m.mux([u, half], neg)


def _round(top):
    """rshr(acc, MATVEC_EXTRA) from top = acc's bits MATVEC_EXTRA - 1 and up (the rest cannot
    change the result, so the pipeline register holds only these): SInt[ACC_BITS - MATVEC_EXTRA]."""
    # floor((acc + 2^(E-1)) / 2^E) = floor(acc / 2^E) + bit E-1 of acc
    n = ACC_BITS - MATVEC_EXTRA
    a = m.bits(top)
    return m.sint(a[1:]) + m.sint(m.zext_to(a[:1], n))


def _saturate(r):
    """r saturated to ACT_BITS."""
    n = len(r)
    hi = r > m.sint(ACT_MAX, n)
    lo = r < m.sint(ACT_MIN, n)
    sat = m.mux([m.bits(ACT_MIN & ((1 << ACT_BITS) - 1), ACT_BITS), m.bits(ACT_MAX, ACT_BITS)], hi)
    return m.mux([m.bits(r)[:ACT_BITS], sat], hi | lo)


MUTANTS = {
    "overwrite_y": "takes a row's last beat without room in the Y FIFO, so a result is lost",
}


class MatVec(m.Generator2):
    def __init__(self, lanes: int, bits: int, cols: int, rows: int, mutant=None, formal=False,
                 dynamic=False, wide: int = 0, y_depth: int | None = None):
        """dynamic=True: `cols` and `rows` are maxima and plain inputs (held steady by the
        controller) give the shapes, so one engine serves every projection of the decoder:
        `load_cols` the length of the vector being loaded (each bank remembers its own),
        `n_rows` the rows of the matrix being computed, and `keep_x` makes the next matrix
        reuse the vector of the previous one (K and V after Q, W3 after W1) instead of
        moving to the other bank.  `lanes` must then be a power of two.

        wide=N (a power of two dividing `lanes`): a second load port `XN` takes N elements a
        beat into the same banks (RMSNorm's beats, decoder/top.py); a vector loads through one
        port or the other, and its length must then be a multiple of N.

        y_depth: the Y FIFO's rows, a power of two (default: the first at least latency + 2, full
        rate with rows of one beat)."""
        check_mutant(mutant, MUTANTS, "matvec")
        if dynamic and lanes & (lanes - 1):
            raise ValueError(f"matvec: dynamic shapes need a power-of-two lane count, got {lanes}")
        if bits not in WEIGHT_FORMATS.values():
            raise ValueError(f"matvec: mantissa width must be one of {sorted(WEIGHT_FORMATS.values())}, got {bits}")
        if lanes < 1 or cols < 1 or rows < 1:
            raise ValueError(f"matvec needs lanes, cols, rows >= 1, got {lanes}, {cols}, {rows}")
        if wide and (wide & (wide - 1) or lanes % wide):
            raise ValueError(f"matvec: the wide port's width must be a power of two dividing {lanes}, got {wide}")
        L, B = lanes, beats_per_row(cols, lanes)
        depth = y_depth or matvec_y_depth(L)
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"matvec: the Y FIFO's depth must be a power of two >= 2, got {depth}")
        self.name = f"MatVec_L{L}_w{bits}_c{cols}_r{rows}" + ("_dyn" if dynamic else "") + (
            f"_x{wide}" if wide else "") + ("" if y_depth is None else f"_y{y_depth}") + (
            f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        ports = dict(X=StreamIn(ACT), W=StreamIn(WeightBeat(L, bits)), Y=StreamOut(ACT))
        if wide:
            ports["XN"] = StreamIn(m.Array[wide, ACT])
        cw = clog2(cols + 1)
        if dynamic:
            ports.update(load_cols=m.In(m.UInt[cw]), n_rows=m.In(m.UInt[clog2(rows + 1)]), keep_x=m.In(m.Bit))
        self.io = io = clocked(**ports)

        # -- the two vector banks -----------------------------------------------------------
        full = [ctrl_reg(m.Bit, f"full{k}") for k in range(2)]      # bank k holds a whole vector
        # the load beats reach the lane memories a cycle after they are taken (a register stage,
        # so the memories' write enables come from flip-flops): a bank whose last element was
        # taken is `pend` for that cycle, full to the loads, not yet to the rows
        pend = [ctrl_reg(m.Bit, f"pend{k}") for k in range(2)]
        # its last beat's index (dynamic shapes), worked out when it fills, so that the end of a
        # row is a compare of registers, not an adder in front of W.ready
        blast = [data_reg(m.UInt[clog2(B)], f"last_beat{k}") for k in range(2)] if dynamic else []
        cbank = ctrl_reg(m.Bit, "cbank")       # the bank the rows are computed from
        stale = ctrl_reg(m.Bit, "stale")       # cbank has served a whole matrix
        lbank = ctrl_reg(m.Bit, "lbank")       # the bank a load in progress writes
        # a load in progress (mid) and the elements it still owes (left): the end of a vector is
        # a compare with a constant, not an adder, on the path to the lane memories' enables
        mid = ctrl_reg(m.Bit, "mid_load")
        left = ctrl_reg(m.UInt[cw], "load_left")
        beat = ctrl_reg(m.UInt[clog2(B)], "beat")
        row = ctrl_reg(m.UInt[clog2(rows)], "row")
        owed = ctrl_reg(m.UInt[clog2(depth + 1)], "owed")   # rows taken whose Y has not left

        def bank_bit(regs, k):
            return m.mux([regs[0].O, regs[1].O], k)

        # vectors are used in the order they load: a new load fills cbank if it is free, else
        # the other bank (the one the rows move to next)
        other = ~cbank.O

        def load_of(full_v, pend_v, cbank_v, lbank_v, mid_v):
            """(the bank a load writes, X.ready) from the control state (lists: a value per bank):
            a bank pending full is full as the loads see it"""
            taken = [f | q for f, q in zip(full_v, pend_v)]
            pick = m.mux([cbank_v, ~cbank_v], m.mux(taken, cbank_v))
            target_v = m.mux([pick, lbank_v], mid_v)
            return target_v, ~m.mux(taken, target_v)

        target, _ = load_of([r.O for r in full], [r.O for r in pend], cbank.O, lbank.O, mid.O)
        # X.ready is a flip-flop, worked out a cycle ahead like W.ready (below); after reset every
        # bank is free, so it resets to 1
        x_ready_q = ctrl_reg(m.Bit, "x_ready", init=1)
        x_ready = x_ready_q.O
        load_fire = io.X.valid & x_ready
        wide_fire = io.XN.valid & x_ready if wide else m.bit(0)
        any_load = load_fire | wide_fire
        load_len = io.load_cols if dynamic else m.uint(cols, cw)
        # elements a load beat brings: 1 on X, N on XN (`step(n)`: that count in n bits, mod 2^n)
        def step(n):
            one = m.uint(1, n)
            return m.mux([one, m.uint(wide % (1 << n), n)], wide_fire) if wide else one

        left_now = m.mux([load_len, left.O], mid.O)
        last_load = left_now == step(cw)
        # where the element being loaded goes: lane load_lane, word {target, load_beat}
        load_lane = ctrl_reg(m.UInt[clog2(L)], "load_lane")
        load_beat = ctrl_reg(m.UInt[clog2(B)], "load_beat")
        last_lane = load_lane.O == (L - 1)
        if wide:
            last_lane = m.mux([last_lane, load_lane.O == (L - wide)], wide_fire)
        lane_next = m.mux([load_lane.O + step(len(load_lane.O)), m.uint(0, len(load_lane.O))], last_lane | last_load)
        load_lane.I @= m.mux([load_lane.O, lane_next], any_load)
        load_beat.I @= m.mux([load_beat.O, m.mux([m.mux([load_beat.O, load_beat.O + 1], last_lane),
                                                  m.uint(0, len(load_beat.O))], last_load)], any_load)
        waddr = m.concat(m.bits(load_beat.O), m.bits([target]))
        # the rows' read address, registered every cycle (no enable): in stage "read" it names the
        # beat taken in the cycle before, and the lane memories (distributed RAM) read it then;
        # nothing of W.ready reaches the memories
        raddr = hold(m.concat(m.bits(beat.O), m.bits([cbank.O])), "rd_addr", None)
        # the write stage: enables, address and data registered, the lane's word picked after them
        waddr_q = hold(waddr, "wr_addr", None)
        xd_q = hold(io.X.data, "wr_x", None)
        if wide:
            xn_q = [hold(io.XN.data[i], f"wr_xn{i}", None) for i in range(wide)]
            wide_q = hold(wide_fire, "wr_wide", None)
        xs = []
        for j in range(L):
            we, wdata = load_fire & (load_lane.O == j), xd_q
            if wide:   # lane j takes element j % N of an XN beat whose first lane is its group's
                k = wide.bit_length() - 1
                group = load_lane.O[k:] == (j >> k) if k < len(load_lane.O) else m.bit(1)
                we = we | (wide_fire & group)
                wdata = m.mux([wdata, xn_q[j % wide]], wide_q)
            we_q = ctrl_reg(m.Bit, f"wr_en{j}")
            we_q.I @= we
            xs.append(memory(f"xlane{j}", 2 << len(beat.O), ACT_BITS, io.CLK, we_q.O, waddr_q, wdata, raddr))

        def ready_of(full_v, cbank_v, stale_v, beat_v, blast_v, room):
            """(W.ready, the row's last beat) from the control state (lists: a value per bank;
            room: the Y FIFO can take one more row, owed != depth)"""
            lb = beat_v == (m.mux(blast_v, cbank_v) if dynamic else m.uint(B - 1, len(beat_v)))
            r = m.mux(full_v, cbank_v) & ~stale_v
            return (r if mutant == "overwrite_y" else r & (~lb | room)), lb

        # W.ready and "this is the row's last beat" are flip-flops: worked out a cycle ahead from
        # the control registers' next values, so the fan-out of a W transfer (the counters' and
        # the pipeline's enables) starts at a register, not behind the credit compare and muxes
        w_ready_q = ctrl_reg(m.Bit, "w_ready")
        last_beat_q = ctrl_reg(m.Bit, "last_beat")
        w_ready, last_beat = w_ready_q.O, last_beat_q.O
        if dynamic:
            rw = clog2(rows + 1) + 1
            last_row = m.zext_to(row.O, rw) == (m.zext_to(io.n_rows, rw) - 1)
            keep = io.keep_x
        else:
            last_row = row.O == (rows - 1)
            keep = m.bit(0)
        # a matrix starting on a stale bank first keeps it or releases it (one cycle)
        turn = io.W.valid & stale.O
        release = turn & ~keep
        w_fire = io.W.valid & w_ready
        end_row = w_fire & last_beat
        end_matrix = end_row & last_row

        # ---- the arithmetic pipeline (MATVEC_PIPELINE): valid and row-end tags, the data beside them
        valid, last, stages = [w_fire], [last_beat], []

        def advance(stage: str):
            stages.append(stage)
            v = ctrl_reg(m.Bit, f"{stage}_valid")
            t = ctrl_reg(m.Bit, f"{stage}_last")
            v.I @= valid[-1]
            t.I @= m.mux([t.O, last[-1]], valid[-1])
            valid.append(v.O)
            last.append(t.O)
            return valid[-2]                 # the enable of the stage's data registers

        advance("read")
        en = None
        mants = [hold(m.sint(io.W.data.mant[j]), f"read_m{j}", en) for j in range(L)]
        shifts = [_shift_amount(io.W.data.exp[j]) for j in range(L)]
        negs = [hold(n, f"read_neg{j}", en) for j, (n, _) in enumerate(shifts)]
        amts = [hold(a, f"read_amt{j}", en) for j, (_, a) in enumerate(shifts)]
        en = advance("x")
        zero = m.bits(0, ACT_BITS)
        xq = []
        for j in range(L):
            x = xs[j]
            if not dynamic and (B - 1) * L + j >= cols:      # a padded lane of the last beat
                x = m.mux([x, zero], last[-2])
            if formal:     # the properties are the control's: z3 need not carry the products
                x = zero
            xq.append(hold(m.sint(x), f"x{j}", en))
        mants = [hold(v, f"x_m{j}", en) for j, v in enumerate(mants)]
        negs = [hold(v, f"x_neg{j}", en) for j, v in enumerate(negs)]
        amts = [hold(v, f"x_amt{j}", en) for j, v in enumerate(amts)]
        en = advance("partials")
        parts = []
        for j in range(L):
            pp = partial_products(mants[j], xq[j])
            parts.append([(sh, hold(p, f"pp{j}_{i}", en)) for i, (sh, p) in enumerate(pp)])
        negs = [hold(v, f"pp_neg{j}", en) for j, v in enumerate(negs)]
        amts = [hold(v, f"pp_amt{j}", en) for j, v in enumerate(amts)]
        en = advance("product")
        p_bits = bits + ACT_BITS
        prods = [hold(sum_partials(parts[j], p_bits), f"p{j}", en) for j in range(L)]
        negs = [hold(v, f"p_neg{j}", en) for j, v in enumerate(negs)]
        amts = [hold(v, f"p_amt{j}", en) for j, v in enumerate(amts)]
        en = advance("shift_hi")
        lo = SHIFT_BITS // 2
        us = []
        for j in range(L):
            hi_amt = m.uint(m.concat(m.bits(0, lo), amts[j][lo:]))
            us.append(hold(_shift(m.sext_to(prods[j], ACC_BITS), negs[j], hi_amt), f"sh{j}", en))
        negs = [hold(v, f"sh_neg{j}", en) for j, v in enumerate(negs)]
        amts = [hold(m.uint(v[:lo]), f"sh_amt{j}", en) for j, v in enumerate(amts)]
        en = advance("shift_lo")
        us = [hold(_shift(us[j], negs[j], amts[j]), f"u{j}", en) for j in range(L)]
        negs = [hold(v, f"u_neg{j}", en) for j, v in enumerate(negs)]
        en = advance("term")
        level = [hold(_round_half(us[j], negs[j]), f"t{j}", en) for j in range(L)]
        for st in range(tree_stages(L)):
            en = advance(f"tree{st}")
            for _ in range(ADD_LEVELS):
                if len(level) > 1:
                    level = [a + b for a, b in zip(level[0::2], level[1::2])] + (
                        [level[-1]] if len(level) % 2 else [])
            level = [hold(v, f"tree{st}_{i}", en) for i, v in enumerate(level)]
        beat_sum = level[0]
        en = advance("acc")
        acc = ctrl_reg(ACC, "acc")
        acc_next = acc.O + beat_sum
        acc.I @= m.mux([acc.O, m.mux([acc_next, m.sint(0, ACC_BITS)], last[-2])], en)
        total = hold(m.bits(acc_next)[MATVEC_EXTRA - 1:], "total", en & last[-2])
        en = advance("round")
        rounded = hold(_round(total), "rounded", en & last[-2])
        en = advance("saturate")
        y = hold(_saturate(rounded), "saturated", en & last[-2])
        # "fifo": the Y FIFO, a ring in a small memory (distributed RAM) written from the
        # "saturate" register and read combinationally at y_rd; the credits (owed) keep a push
        # from ever finding it full, so it needs no ready of its own
        pw = clog2(depth)
        y_wr = ctrl_reg(m.UInt[pw], "y_wr")
        y_rd = ctrl_reg(m.UInt[pw], "y_rd")
        y_count = ctrl_reg(m.UInt[clog2(depth + 1)], "y_count")
        push = valid[-1] & last[-1]
        # Y.valid (the FIFO is not empty) is a flip-flop too: it starts the path through Y.ready
        # to the credits and W.ready
        y_valid_q = ctrl_reg(m.Bit, "y_valid")
        y_valid = y_valid_q.O
        y_fire = y_valid & io.Y.ready
        y_data = memory("y_mem", depth, ACT_BITS, io.CLK, push, y_wr.O, y, y_rd.O)
        y_wr.I @= m.mux([y_wr.O, y_wr.O + 1], push)
        y_rd.I @= m.mux([y_rd.O, y_rd.O + 1], y_fire)
        y_count_next = m.mux([y_count.O, y_count.O + 1, y_count.O - 1, y_count.O], m.bits([push, y_fire]))
        y_count.I @= y_count_next
        y_valid_q.I @= y_count_next != 0
        owed.I @= m.mux([m.mux([owed.O, owed.O - 1], y_fire), m.mux([owed.O + 1, owed.O], y_fire)], end_row)
        # room after this cycle, owed' != depth, without the adder: owed' reaches depth only from
        # depth (no Y leaves; no row ends then, for want of room) or from depth - 1 (a row ends
        # and no Y leaves); the compares read the register, in parallel with Y.ready's path
        room_next = ~(~y_fire & ((owed.O == depth) | ((owed.O == depth - 1) & end_row)))
        tree = [f"tree{i}" for i in range(tree_stages(L))]
        assert stages + ["fifo"] == [*MATVEC_PIPELINE[:-4], *tree, *MATVEC_PIPELINE[-4:]], stages

        load_done = any_load & last_load
        n_beats = (m.zext_to(load_len, cw + 1) + (L - 1)) >> m.uint(L.bit_length() - 1, cw + 1)
        load_last_beat = m.uint(m.bits(n_beats - 1)[:len(beat.O)])      # < B: no bit is lost
        full_next, blast_next, pend_next = [], [], []
        for k in range(2):
            filled = load_done & (target == k)
            emptied = release & (cbank.O == k)
            pend[k].I @= filled
            pend_next.append(filled)
            full_next.append((full[k].O & ~emptied) | pend[k].O)
            full[k].I @= full_next[k]
            if dynamic:
                blast_next.append(m.mux([blast[k].O, load_last_beat], filled))
                blast[k].I @= blast_next[k]
        cbank_next = m.mux([cbank.O, other], release)
        cbank.I @= cbank_next
        stale_next = m.mux([stale.O & ~turn, m.bit(1)], end_matrix)
        stale.I @= stale_next
        lbank_next = m.mux([lbank.O, target], any_load)
        lbank.I @= lbank_next
        mid_next = m.mux([mid.O, ~last_load], any_load)
        mid.I @= mid_next
        x_ready_q.I @= load_of(full_next, pend_next, cbank_next, lbank_next, mid_next)[1]
        left.I @= m.mux([left.O, left_now - step(cw)], any_load)
        beat_next = m.mux([beat.O, m.mux([beat.O + 1, m.uint(0, len(beat.O))], last_beat)], w_fire)
        beat.I @= beat_next
        ready_next, last_beat_next = ready_of(full_next, cbank_next, stale_next, beat_next, blast_next, room_next)
        w_ready_q.I @= ready_next
        last_beat_q.I @= last_beat_next
        row.I @= m.mux([row.O, m.mux([row.O + 1, m.uint(0, len(row.O))], last_row)], end_row)

        io.X.ready @= x_ready
        if wide:
            io.XN.ready @= x_ready
        io.W.ready @= w_ready
        io.Y.valid @= y_valid
        io.Y.data @= y_data

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            x, w, y = p.monitor(io.X), p.monitor(io.W), p.monitor(io.Y)
            md, lf, bt, rw_, cb, st, lb = (p.sig(r.O) for r in (mid, left, beat, row, cbank, stale, lbank))
            ln = p.sig(load_len)
            f0, f1 = p.sig(full[0].O), p.sig(full[1].O)
            p0, p1 = p.sig(pend[0].O), p.sig(pend[1].O)
            # a bank pending full is not full yet, only one is, and a load never writes into it
            p.assert_(f"!({p0} && {f0}) && !({p1} && {f1}) && !({p0} && {p1})")
            p.assert_(f"!{md} || !({lb} ? {p1} : {p0})")
            if wide:
                # the contract of the wide port: a vector loads through one port, so XN beats
                # start at a multiple of N and never come with an X beat
                xn = p.monitor(io.XN)
                p.assume(f"!({x['valid']} && {xn['valid']})")
                p.assume(f"!{xn['valid']} || (({md} ? {lf} : {ln}) % {wide}) == 0")
                p.cover(f"{xn['fire']} && {w['fire']}")
            # W.ready and the last-beat flag are the functions of the state they were worked out
            # for a cycle ahead (the flag only where a row can run: a bank's last-beat index is
            # not reset, so before its first load the flag may disagree)
            r_now, lb_now = ready_of([full[0].O, full[1].O], cbank.O, stale.O, beat.O,
                                     [b.O for b in blast], owed.O != depth)
            p.assert_(f"{p.sig(w_ready)} == ({p.sig(r_now)})")
            p.assert_(f"{p.sig(y_valid)} == ({p.sig(y_count.O)} != 0)")
            _, x_now = load_of([r.O for r in full], [r.O for r in pend], cbank.O, lbank.O, mid.O)
            p.assert_(f"{p.sig(x_ready)} == ({p.sig(x_now)})")
            p.assert_(f"!({cb} ? {f1} : {f0}) || {p.sig(last_beat)} == ({p.sig(lb_now)})")
            # the counters stay in range; a stale bank is full and no matrix is half done
            p.assert_(f"!{md} || ({lf} != 0 && {lf} < {cols})")
            p.assert_(f"{bt} < {B}")
            p.assert_(f"{rw_} < {rows}")
            p.assert_(f"!{st} || (({cb} ? {f1} : {f0}) && {bt} == 0 && {rw_} == 0)")
            # a half-loaded bank is not full, and rows run only on a full bank
            p.assert_(f"!{md} || !({lb} ? {f1} : {f0})")
            p.assert_(f"({bt} == 0 && {rw_} == 0) || ({cb} ? {f1} : {f0})")
            # one Y beat per row: rows finished - Y beats delivered = the rows owed (counted modulo
            # 2^5), which are the row ends in the pipeline plus the rows in the FIFO, never more
            # than the FIFO holds; so a row's result is never pushed into a full FIFO
            ow, cnt, yw, yr = p.sig(owed.O), p.sig(y_count.O), p.sig(y_wr.O), p.sig(y_rd.O)
            p.assert_(f"{cnt} <= {depth} && (({yw} - {yr}) & {depth - 1}) == ({cnt} & {depth - 1})")
            f_rows = p.counter(f"{w['fire']} && {bt} == {B - 1}", 5, "rows_done")
            f_y = p.counter(f"{y['fire']}", 5, "y_out")
            p.assert_(f"({f_rows} - {f_y}) == {ow}")
            p.assert_(f"{ow} <= {depth}")
            in_pipe = " + ".join(f"({p.sig(v)} && {p.sig(t)})" for v, t in zip(valid[1:], last[1:]))
            p.assert_(f"{ow} == 6'd0 + {cnt} + {in_pipe}")
            p.assert_(f"!({p.sig(push)} && {cnt} == {depth})")
            # double buffering happens: the next vector loads while rows are computed; a whole
            # matrix is delivered and a second one starts
            p.cover(f"{x['fire']} && {w['fire']}")
            done = p.sticky(f"{y['fire']} && {rw_} == 0 && {st}", "matrix_done")
            p.cover(f"{done} && {w['fire']}")
            # a row's last beat held back: the FIFO is full with Y stalled
            p.cover(f"{y['valid']} && !{y['ready']} && {w['valid']} && {bt} == {B - 1} && {ow} == {depth}")
            p.emit()


# emitted: 4 lanes of w16, 18 columns (a padded last beat), 3 rows; proved: 2 lanes of w8,
# 3 columns (a padded last beat), 2 rows.  With the wide port: 4 lanes, 2-wide, 16 columns;
# proved with 2 lanes, a 2-wide port (a whole beat a load), 4 columns, 2 rows.  The proofs use
# a 2-row Y FIFO, so that the mutant overflows it within a short trace
MATVEC_FORMAL = dict(formal_kwargs={"y_depth": 2}, depth=6, cover_depth=28, mutant_depth=28)
MATVEC_EMITTED = (4, 16, 18, 3)
MATVEC_PROVED = (2, 8, 3, 2)
MATVEC_WIDE_EMITTED = (4, 16, 16, 3)
MATVEC_WIDE_PROVED = (2, 8, 4, 2)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("matvec", "MatVec engine, L=4 w16 3x18 (emit) / L=2 w8 2x3 (proof): two vector banks, one Y per row",
                      MatVec, MATVEC_EMITTED, MATVEC_PROVED, MUTANTS, **MATVEC_FORMAL),
            stage_row("matvec_wide", "MatVec with a 2-wide vector port XN, L=4 w16 3x16 (emit) / L=2 w8 2x4 (proof)",
                      functools.partial(MatVec, wide=2), MATVEC_WIDE_EMITTED, MATVEC_WIDE_PROVED, MUTANTS,
                      **MATVEC_FORMAL)]
