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

Per beat each lane forms p = m * x (64 bits), shifts it by k = e + MATVEC_EXTRA
(left, or right rounding half up) and the L terms are added to a 64-bit
accumulator; after a row's last beat the accumulator is rounded by MATVEC_EXTRA,
saturated to ACT_BITS and registered in Y.  That is `golden.stages.matvec`, term
by term.  One W beat is taken per cycle while W is valid, except on a row's last
beat when Y still holds an unread result, and for one cycle when a matrix starts on
a vector that has already served one (the bank is released, or kept with `keep_x`).
The multiply/shift/add of a beat is one combinational stage (simulation-first; a
synthesis target would pipeline it without changing the stream behaviour)."""

from __future__ import annotations

import functools

import magma as m

from magma_llama.numerics.fixed import ACC_BITS, ACT_BITS, ACT_MAX, ACT_MIN, MATVEC_EXTRA
from magma_llama.numerics.weights import EXP_BITS, EXP_MAX, EXP_MIN, WEIGHT_FORMATS
from magma_llama.stages.sram import memory
from magma_llama.stages.units import tree_sum
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


def _term(mant, x, exp):
    """One lane: (m * x) shifted by exp + MATVEC_EXTRA, rounding half up on right shifts.
    Exact for exp in [EXP_MIN, EXP_MAX] (the W stream's contract: an image holds no other)."""
    p = m.sext_to(m.sint(mant), ACC_BITS) * m.sext_to(m.sint(x), ACC_BITS)
    k = m.sext_to(m.sint(exp), K_BITS) + m.sint(MATVEC_EXTRA, K_BITS)
    neg = k[K_BITS - 1]

    def amount(v):          # a shift amount: SHIFT_BITS bits, as the shift's operand width
        return m.sint(m.zext_to(m.bits(v)[:SHIFT_BITS], ACC_BITS))
    left = p << amount(k)
    # the rounding half 2^(-k-1) of a right shift; ~k = -k-1 (only used when k < 0)
    bias = m.sint(1, ACC_BITS) << amount(~k)
    right = (p + bias) >> amount(-k)
    return m.mux([left, right], neg)


def _round_sat(acc):
    """sat_ACT(rshr(acc, MATVEC_EXTRA))."""
    # floor((acc + 2^(E-1)) / 2^E) = floor(acc / 2^E) + bit E-1 of acc
    n = ACC_BITS - MATVEC_EXTRA
    a = m.bits(acc)
    r = m.sint(a[MATVEC_EXTRA:]) + m.sint(m.zext_to(a[MATVEC_EXTRA - 1:MATVEC_EXTRA], n))
    hi = r > m.sint(ACT_MAX, n)
    lo = r < m.sint(ACT_MIN, n)
    sat = m.mux([m.bits(ACT_MIN & ((1 << ACT_BITS) - 1), ACT_BITS), m.bits(ACT_MAX, ACT_BITS)], hi)
    return m.mux([m.bits(r)[:ACT_BITS], sat], hi | lo)


MUTANTS = {
    "overwrite_y": "takes a row's last beat while Y is stalled, overwriting the unread result",
}


class MatVec(m.Generator2):
    def __init__(self, lanes: int, bits: int, cols: int, rows: int, mutant=None, formal=False,
                 dynamic=False, wide: int = 0):
        """dynamic=True: `cols` and `rows` are maxima and plain inputs (held steady by the
        controller) give the shapes, so one engine serves every projection of the decoder:
        `load_cols` the length of the vector being loaded (each bank remembers its own),
        `n_rows` the rows of the matrix being computed, and `keep_x` makes the next matrix
        reuse the vector of the previous one (K and V after Q, W3 after W1) instead of
        moving to the other bank.  `lanes` must then be a power of two.

        wide=N (a power of two dividing `lanes`): a second load port `XN` takes N elements a
        beat into the same banks (RMSNorm's beats, decoder/top.py); a vector loads through one
        port or the other, and its length must then be a multiple of N."""
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
        self.name = f"MatVec_L{L}_w{bits}_c{cols}_r{rows}" + ("_dyn" if dynamic else "") + (
            f"_x{wide}" if wide else "") + (
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
        blen = [data_reg(m.UInt[cw], f"len{k}") for k in range(2)]  # its length (dynamic)
        cbank = ctrl_reg(m.Bit, "cbank")       # the bank the rows are computed from
        stale = ctrl_reg(m.Bit, "stale")       # cbank has served a whole matrix
        lbank = ctrl_reg(m.Bit, "lbank")       # the bank a load in progress writes
        load_idx = ctrl_reg(m.UInt[clog2(cols)], "load_idx")
        beat = ctrl_reg(m.UInt[clog2(B)], "beat")
        row = ctrl_reg(m.UInt[clog2(rows)], "row")
        acc = ctrl_reg(ACC, "acc")
        y_valid = ctrl_reg(m.Bit, "y_valid")
        y_data = data_reg(ACT, "y_data")

        def bank_bit(regs, k):
            return m.mux([regs[0].O, regs[1].O], k)

        # vectors are used in the order they load: a new load fills cbank if it is free, else
        # the other bank (the one the rows move to next)
        other = ~cbank.O
        mid_load = load_idx.O != 0
        pick = m.mux([cbank.O, other], bank_bit(full, cbank.O))
        target = m.mux([pick, lbank.O], mid_load)
        x_ready = ~bank_bit(full, target)
        load_fire = io.X.valid & x_ready
        wide_fire = io.XN.valid & x_ready if wide else m.bit(0)
        any_load = load_fire | wide_fire
        load_len = io.load_cols if dynamic else m.uint(cols, cw)
        # elements a load beat brings: 1 on X, N on XN (`step(n)`: that count in n bits, mod 2^n)
        def step(n):
            one = m.uint(1, n)
            return m.mux([one, m.uint(wide % (1 << n), n)], wide_fire) if wide else one

        last_load = m.zext_to(load_idx.O, cw + 1) == (m.zext_to(load_len, cw + 1) - step(cw + 1))
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
        raddr = m.concat(m.bits(beat.O), m.bits([cbank.O]))
        zero = m.bits(0, ACT_BITS)
        terms = []
        for j in range(L):
            we, wdata = load_fire & (load_lane.O == j), io.X.data
            if wide:   # lane j takes element j % N of an XN beat whose first lane is its group's
                k = wide.bit_length() - 1
                group = load_lane.O[k:] == (j >> k) if k < len(load_lane.O) else m.bit(1)
                we = we | (wide_fire & group)
                wdata = m.mux([wdata, io.XN.data[j % wide]], wide_fire)
            x = memory(f"xlane{j}", 2 << len(beat.O), ACT_BITS, io.CLK, we, waddr, wdata, raddr)
            if (B - 1) * L + j >= cols:      # a padded lane of the last beat (static shape)
                x = m.mux([x, zero], beat.O == (B - 1))
            terms.append(_term(io.W.data.mant[j], x, io.W.data.exp[j]))
        acc_next = acc.O + tree_sum(terms)

        if dynamic:
            n_cols = m.mux([blen[0].O, blen[1].O], cbank.O)
            n_beats = (m.zext_to(n_cols, cw + 1) + (L - 1)) >> m.uint(L.bit_length() - 1, cw + 1)
            last_beat = m.zext_to(beat.O, cw + 1) == (n_beats - 1)
            rw = clog2(rows + 1) + 1
            last_row = m.zext_to(row.O, rw) == (m.zext_to(io.n_rows, rw) - 1)
            keep = io.keep_x
        else:
            last_beat = beat.O == (B - 1)
            last_row = row.O == (rows - 1)
            keep = m.bit(0)
        # a matrix starting on a stale bank first keeps it or releases it (one cycle)
        turn = io.W.valid & stale.O
        release = turn & ~keep
        y_free = ~y_valid.O | io.Y.ready
        w_ready = bank_bit(full, cbank.O) & ~stale.O & (~last_beat | y_free)
        if mutant == "overwrite_y":
            w_ready = bank_bit(full, cbank.O) & ~stale.O
        w_fire = io.W.valid & w_ready
        end_row = w_fire & last_beat
        end_matrix = end_row & last_row

        load_done = any_load & last_load
        for k in range(2):
            filled = load_done & (target == k)
            emptied = release & (cbank.O == k)
            full[k].I @= (full[k].O & ~emptied) | filled
            blen[k].I @= m.mux([blen[k].O, load_len], filled)
        cbank.I @= m.mux([cbank.O, other], release)
        stale.I @= m.mux([stale.O & ~turn, m.bit(1)], end_matrix)
        lbank.I @= m.mux([lbank.O, target], any_load)
        load_idx.I @= m.mux([load_idx.O, m.mux([load_idx.O + step(len(load_idx.O)), m.uint(0, len(load_idx.O))],
                                               last_load)], any_load)
        beat.I @= m.mux([beat.O, m.mux([beat.O + 1, m.uint(0, len(beat.O))], last_beat)], w_fire)
        row.I @= m.mux([row.O, m.mux([row.O + 1, m.uint(0, len(row.O))], last_row)], end_row)
        acc.I @= m.mux([acc.O, m.mux([acc_next, m.sint(0, ACC_BITS)], last_beat)], w_fire)
        y_valid.I @= (y_valid.O & ~io.Y.ready) | end_row
        y_data.I @= m.mux([y_data.O, _round_sat(acc_next)], end_row)

        io.X.ready @= x_ready
        if wide:
            io.XN.ready @= x_ready
        io.W.ready @= w_ready
        io.Y.valid @= y_valid.O
        io.Y.data @= y_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            x, w, y = p.monitor(io.X), p.monitor(io.W), p.monitor(io.Y)
            li, bt, rw_, cb, st, lb = (p.sig(r.O) for r in (load_idx, beat, row, cbank, stale, lbank))
            f0, f1 = p.sig(full[0].O), p.sig(full[1].O)
            if wide:
                # the contract of the wide port: a vector loads through one port, so XN beats
                # start at a multiple of N and never come with an X beat
                xn = p.monitor(io.XN)
                p.assume(f"!({x['valid']} && {xn['valid']})")
                p.assume(f"!{xn['valid']} || ({li} % {wide}) == 0")
                p.cover(f"{xn['fire']} && {w['fire']}")
            # the counters stay in range; a stale bank is full and no matrix is half done
            p.assert_(f"{li} < {cols}")
            p.assert_(f"{bt} < {B}")
            p.assert_(f"{rw_} < {rows}")
            p.assert_(f"!{st} || (({cb} ? {f1} : {f0}) && {bt} == 0 && {rw_} == 0)")
            # a half-loaded bank is not full, and rows run only on a full bank
            p.assert_(f"{li} == 0 || !({lb} ? {f1} : {f0})")
            p.assert_(f"({bt} == 0 && {rw_} == 0) || ({cb} ? {f1} : {f0})")
            # one Y beat per row: rows finished = Y beats produced, counted modulo 2^4
            f_rows = p.counter(f"{w['fire']} && {bt} == {B - 1}", 4, "rows_done")
            f_y = p.counter(f"{y['fire']}", 4, "y_out")
            p.assert_(f"({f_rows} - {f_y}) == ({y['valid']} ? 4'd1 : 4'd0)")
            # double buffering happens: the next vector loads while rows are computed; a whole
            # matrix is delivered and a second one starts
            p.cover(f"{x['fire']} && {w['fire']}")
            done = p.sticky(f"{y['fire']} && {rw_} == 0 && {st}", "matrix_done")
            p.cover(f"{done} && {w['fire']}")
            p.cover(f"{y['valid']} && !{y['ready']} && {w['valid']} && {bt} == {B - 1}")
            p.emit()


# emitted: 4 lanes of w16, 18 columns (a padded last beat), 3 rows; proved: 2 lanes of w8,
# 3 columns (a padded last beat), 2 rows.  With the wide port: 4 lanes, 2-wide, 16 columns;
# proved with 2 lanes, a 2-wide port (a whole beat a load), 4 columns, 2 rows
MATVEC_EMITTED = (4, 16, 18, 3)
MATVEC_PROVED = (2, 8, 3, 2)
MATVEC_WIDE_EMITTED = (4, 16, 16, 3)
MATVEC_WIDE_PROVED = (2, 8, 4, 2)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("matvec", "MatVec engine, L=4 w16 3x18 (emit) / L=2 w8 2x3 (proof): two vector banks, one Y per row",
                      MatVec, MATVEC_EMITTED, MATVEC_PROVED, MUTANTS, depth=6),
            stage_row("matvec_wide", "MatVec with a 2-wide vector port XN, L=4 w16 3x16 (emit) / L=2 w8 2x4 (proof)",
                      functools.partial(MatVec, wide=2), MATVEC_WIDE_EMITTED, MATVEC_WIDE_PROVED, MUTANTS, depth=6)]
