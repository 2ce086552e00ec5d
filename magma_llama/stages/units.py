"""Shared combinational function units: the integer numerics as Magma logic.

Every unit is a plain Python function that takes magma values and returns magma
values, so any `m.Generator2` can call it inside its definition; each is bit-exact
to its numpy counterpart in `numerics.fixed` / `numerics.functions` and reads its
tables from `numerics.tables` (a table exists once).  Being combinational, a unit's
cost is its depth: the docstrings give the multipliers in series.

Conventions: an `SInt` operand is signed, a `UInt` unsigned, a `Bits` operand is
read as signed; a shift or exponent argument is a Python int (a constant: wiring
only) or a magma value (`UInt` amounts; `SInt` exponents).  A Scale is
`(mant, exp)`: `mant` UInt[MANT_BITS] in [2^30, 2^31) (Q1.30), `exp` SInt[EXP_BITS],
value mant * 2^(exp - 30), as in `numerics.functions`.

- `rshr(x, s)`: round-half-up arithmetic right shift, same width and kind as x.
- `sat(x, bits)`: saturate to a signed `bits`-wide value (SInt[bits]).
- `shift_sat(x, k, bits)`: x * 2^k rounded (k < 0) or saturated, SInt[bits].
- `shift_each(x, k)`: x * 2^k, rounding where k < 0, no saturation, SInt like x.
- `apply_scale(x, mant, exp, bits)`: x * Scale, SInt[bits].
- `mul_rshr_wide(a, b, s)`: round_half_up(a * b / 2^s), SInt[64] a, UInt[31] b.
- `exp_neg(x, frac)`: e^x (x <= 0), Q.frac SInt[32] -> Q1.30 UInt[31].
- `recip(a, frac)`, `rsqrt(a, frac)`: UInt[64] a in [1, 2^62] -> Scale.
- `scale_mul(a, b)`: product of two Scales, a Scale.
- `pack_scale(s)` / `unpack_scale(bits)`: a Scale as one Bits[SCALE_BITS] (one register).
- `sigmoid(x, frac)`: Q.frac SInt[32] -> Q1.30 UInt[31];  `silu(x, frac)`: -> SInt[32].
- `rom(table, addr, width, signed)`: constant table lookup.
- `tree_sum(terms)`: the sum of same-typed values as a balanced adder tree.
- `partial_products(a, b)`, `sum_partials(parts, width)`: a product cut into DSP-tile-sized
  (18 x 18 signed) partial products, to register between the multipliers and their sum.
"""

from __future__ import annotations

import magma as m

from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACT_BITS, ACT_FRAC, ACT_MAX, ACT_MIN, MAX_SHIFT, ONE_Q30, Q30
from magma_llama.streams._base import pad_pow2

MANT_BITS = 31          # Scale mantissa and Q1.30 results (exp_neg, sigmoid): unsigned
EXP_BITS = 8            # Scale exponent, signed
WIDE = 64               # the int64 registers of the numpy model
SCALE_BITS = MANT_BITS + EXP_BITS


def pack_scale(s):
    """A Scale (mant, exp) as one Bits[SCALE_BITS], mant in the low bits: held in one register,
    the datapath that makes it feeds that register alone (a clock-enabled register's datapath is
    then evaluated only when it loads, see streams/_base.load_when)."""
    return m.concat(m.bits(s[0]), m.bits(s[1]))


def unpack_scale(b):
    """pack_scale's inverse: (UInt[MANT_BITS], SInt[EXP_BITS])."""
    return m.uint(b[:MANT_BITS]), m.sint(b[MANT_BITS:SCALE_BITS])


# --- width and kind helpers ---------------------------------------------------------------
def _signed(x) -> bool:
    return not isinstance(x, m.UInt)


def _ext(x, n: int, signed: bool | None = None):
    """x as an n-bit value of its own kind (SInt/UInt): extended by its sign/zero, or cut."""
    if signed is None:
        signed = _signed(x)
    b = m.bits(x)
    w = len(b)
    if w > n:
        b = b[:n]
    elif w < n:
        b = m.sext_to(m.sint(b), n) if signed else m.zext_to(m.uint(b), n)
    return m.sint(b) if signed else m.uint(b)


def s_(x, n: int):
    """Any magma value (Bits read as signed, UInt zero-extended) as SInt[n]."""
    if isinstance(x, int):
        return m.sint(x, n)
    return m.sint(_ext(x, n))


# --- pipeline cuts -------------------------------------------------------------------------
# A unit given `cut` (a stages.pipeline.Cuts) registers its values at the named points of its
# pipeline (stages/latency.py lists them, in order); without one it is combinational.  One
# piece of code either way: the cuts are where the registers go, nothing else changes.
def cut_at(cut, name: str, *values):
    if cut is None:
        return values[0] if len(values) == 1 else values
    return cut(name, *values)


def keep(cut, *values):
    """Values a unit's caller needs after the unit: delayed by the unit's cuts (cut.keep)."""
    return list(values) if cut is None else cut.keep(*values)


def release(cut, kept) -> tuple:
    return tuple(kept) if cut is None else cut.release(kept)


def product(a, b, cut=None, name: str = "mul", width: int = WIDE):
    """a * b as SInt[width] (the operands at their own widths: the caller cuts them to the range
    it knows; a UInt is unsigned).  With a cut: the DSP-tile partial products registered
    (`<name>_parts`), then their sum (`<name>`)."""
    if cut is None:
        return s_(a, width) * s_(b, width)
    parts = partial_products(a, b)
    regs = cut(f"{name}_parts", *[p for _, p in parts])
    regs = regs if isinstance(regs, tuple) else (regs,)
    return cut(name, sum_partials([(sh, r) for (sh, _), r in zip(parts, regs)], width))


def _amount(s, n: int, limit: int | None = None):
    """A runtime unsigned shift amount as n bits, clamped to min(s, limit) (limit < 2^n)."""
    s = m.uint(m.bits(s))
    if limit is not None and (1 << len(s)) - 1 <= limit:
        limit = None if len(s) <= n else limit         # s cannot pass the limit
    w = max(len(s), n)
    s = _ext(s, w, False)
    if limit is not None and limit < (1 << w) - 1:
        s = m.mux([s, m.uint(limit, w)], s > m.uint(limit, w))
    return _ext(s, n, False) if limit is not None and limit < (1 << n) else _cap(s, n)


def _cap(s, n: int):
    """s (UInt[w], w >= n) as UInt[n], values >= 2^n - 1 becoming 2^n - 1 (a shift past every bit)."""
    w = len(s)
    if w == n:
        return s
    big = s > m.uint((1 << n) - 1, w)
    return m.mux([m.uint(m.bits(s)[:n]), m.uint((1 << n) - 1, n)], big)


def _bit(x, i: int):
    """Bit i of x, sign- or zero-extended past its width (infinite two's complement)."""
    b = m.bits(x)
    if i < len(b):
        return b[i]
    return b[len(b) - 1] if _signed(x) else m.bit(0)


# --- shifts, rounding, saturation ---------------------------------------------------------
def shift_round(x, neg, amt, cut=None, name: str = "shift", bounded: bool = False):
    """x << amt, or (neg) x shifted right by amt + 1 and rounded half up: u = x >> amt (bit 0 of u
    is the rounding half), then (u >> 1) + u[0], which never overflows.  x: SInt or UInt (the
    result is the same width and kind); amt: an unsigned runtime amount of any width (amounts
    past x's width shift every bit out; `bounded`: the caller knows amt <= x's width).  With a
    cut: shifted by the amount's high bits (`<name>_shift_hi`), by its low bits
    (`<name>_shift_lo`), then rounded (`<name>_round`)."""
    signed = _signed(x)
    x = m.sint(m.bits(x)) if signed else m.uint(m.bits(x))
    w = len(x)
    k = w.bit_length()                            # amounts 0 .. w
    a = _ext(m.uint(m.bits(amt)), k, False) if bounded else _amount(amt, k, w)
    lo = max(1, k // 2)

    def by(v, bits, right):
        t = _ext(m.uint(bits), w, False)
        t = m.sint(m.bits(t)) if signed else t
        return m.mux([v << t, v >> t], right)

    u = by(x, m.uint(m.concat(m.bits(0, lo), m.bits(a)[lo:])), neg)
    u, neg, a_lo = cut_at(cut, f"{name}_shift_hi", u, neg, m.uint(m.bits(a)[:lo]))
    u = by(u, m.uint(m.zext_to(a_lo, k)), neg)
    u, neg = cut_at(cut, f"{name}_shift_lo", u, neg)
    one = m.uint(m.zext_to(m.bits(u)[:1], w))
    half = (u >> (m.sint(1, w) if signed else m.uint(1, w))) + (m.sint(m.bits(one)) if signed else one)
    return cut_at(cut, f"{name}_round", m.mux([u, half], neg))


def rshr(x, s, clamp: bool = True, cut=None, name: str = "rshr"):
    """round_half_up(x / 2^s) = floor(x / 2^s) + bit s-1 of x, same width and kind as x.

    s: a Python int (wiring only) or an unsigned magma value.  A runtime s is clamped to
    MAX_SHIFT like `fixed.rshr` on arrays (clamp=False: the exact value for any s, as
    `mul_rshr_wide` needs), and shifts by s - 1 through `shift_round`; with a cut, the amount
    is registered first (`<name>_amount`, then shift_round's stages).  Never overflows (the
    rounding adds at most one below 2^(w-1))."""
    signed = _signed(x)
    x = m.sint(m.bits(x)) if signed else m.uint(m.bits(x))
    w = len(x)
    if isinstance(s, int):
        if s == 0:
            return x
        hi = m.bits(x)[s:] if s < w else m.bits(_bit(x, w), 1)
        floor = _ext(m.sint(hi) if signed else m.uint(hi), w, signed)
        rnd = _ext(m.uint(m.bits(_bit(x, s - 1), 1)), w, False)
        return floor + (m.sint(rnd) if signed else rnd)
    s = m.uint(m.bits(s))
    n = max(len(s), 1)
    sh = _amount(s, n, MAX_SHIFT) if clamp else s
    nz = sh != m.uint(0, n)
    amt = m.mux([m.uint(0, n), sh - m.uint(1, n)], nz)       # a right shift by s = by s - 1, rounded
    if clamp:
        amt = _ext(amt, MAX_SHIFT.bit_length(), False)       # <= MAX_SHIFT - 1
    x, nz, amt = cut_at(cut, f"{name}_amount", x, nz, amt)
    return shift_round(x, nz, amt, cut, name, bounded=clamp and MAX_SHIFT - 1 <= w)


def sat(x, bits: int = ACT_BITS):
    """x saturated to a signed `bits`-wide register: SInt[bits] (fixed.sat)."""
    x = m.sint(m.bits(x)) if _signed(x) else m.sint(m.zext_to(m.uint(m.bits(x)), len(x) + 1))
    w = len(x)
    if w <= bits:
        return s_(x, bits)
    hi = x > m.sint((1 << (bits - 1)) - 1, w)
    lo = x < m.sint(-(1 << (bits - 1)), w)
    lim = m.mux([m.sint(-(1 << (bits - 1)), bits), m.sint((1 << (bits - 1)) - 1, bits)], hi)
    return m.mux([m.sint(m.bits(x)[:bits]), lim], hi | lo)


def _shl_sat(x, k, bits: int):
    """sat(x * 2^k, bits) for k >= 0 exactly (k: unsigned runtime amount)."""
    w = len(x)
    kk = _amount(k, w)
    top = (1 << (bits - 1))
    hi_lim = m.uint(top - 1, w) >> kk                            # floor(max / 2^k)
    lo_lim = m.uint(top, w) >> kk                                # -ceil(min / 2^k)
    hi = x > m.sint(hi_lim)
    lo = x < -m.sint(lo_lim)
    lim = m.mux([m.sint(-top, bits), m.sint(top - 1, bits)], hi)
    return m.mux([m.sint(m.bits(x << m.sint(kk))[:bits]), lim], hi | lo)


def shift_sat(x, k, bits: int = ACT_BITS):
    """x * 2^k stored in `bits` bits: rounds (k < 0) or saturates (fixed.shift_sat).

    x: SInt (or Bits); k: Python int or SInt (runtime exponent).  Returns SInt[bits]."""
    x = s_(x, len(x)) if _signed(x) else s_(x, len(x) + 1)
    if isinstance(k, int):
        if k <= 0:
            return sat(rshr(x, -k), bits)
        return _shl_sat(x, m.uint(k, max(1, k.bit_length())), bits)
    k = m.sint(m.bits(k))
    neg = m.bits(k)[len(k) - 1]
    right = sat(rshr(x, m.uint(-k)), bits)
    left = _shl_sat(x, m.uint(k), bits)
    return m.mux([left, right], neg)


def shift_each(x, k, cut=None, name: str = "shift_each"):
    """x * 2^k (k: SInt runtime exponent), rounding where k < 0 (shift clamped at
    MAX_SHIFT), wrapping on the left like int64 (fixed.shift_each).  SInt like x.
    A right shift by -k is one by -k - 1 = ~k, rounded (`shift_round`); with a cut, the
    direction and the amount (at most x's width) are registered first (`<name>_amount`)."""
    x = m.sint(m.bits(x))
    w = len(x)
    k = m.sint(m.bits(k))
    n = len(k)
    neg = m.bits(k)[n - 1]
    right = m.uint(m.bits(~k))                                 # -k - 1
    if MAX_SHIFT - 1 < (1 << n) - 1:
        right = m.mux([right, m.uint(MAX_SHIFT - 1, n)], right > m.uint(MAX_SHIFT - 1, n))
    kb = w.bit_length()
    amt = m.mux([_amount(m.uint(m.bits(k)), kb, w), _amount(right, kb, w)], neg)   # <= w
    x, neg, amt = cut_at(cut, f"{name}_amount", x, neg, amt)
    return shift_round(x, neg, amt, cut, name, bounded=True)


def apply_scale(x, mant, exp, bits: int = ACT_BITS):
    """x * Scale(mant, exp) with x's fraction bits, saturated: SInt[bits] (functions.apply_scale).

    x: SInt[<=33] (Bits read as signed), mant: UInt[31], exp: SInt (runtime) or int.
    One multiplier (x * mant, 64 bits)."""
    p = s_(x, WIDE) * s_(m.uint(m.bits(mant)), WIDE)
    if isinstance(exp, int):
        return shift_sat(p, exp - Q30, bits)
    e = s_(exp, len(exp) + 1)
    return shift_sat(p, e - m.sint(Q30, len(e)), bits)


def mul_rshr_wide(a, b, s):
    """round_half_up(a * b / 2^s), the low 64 bits, exactly as fixed.mul_rshr_wide computes it.

    a: SInt[64]; b: UInt[31] (unsigned); s: int or UInt in [1, 92].  The 95-bit product is
    formed as fixed.mul_rshr_wide does, from a = hi * 2^31 + lo: x = hi * b and y = lo * b
    (two 64-bit multipliers, |x| < 2^63, 0 <= y < 2^62), then
    s <= 31: (x << (31 - s)) + rshr(y, s);  s > 31: (x + 2^(s-32) + (y >> 31)) >> (s - 31).
    Every value fits 64 bits, which also keeps the simulator on 64-bit arithmetic (a
    95-bit product costs Verilator a multi-word multiply each cycle)."""
    a = s_(a, WIDE)
    hi = a >> m.sint(31, WIDE)
    lo = m.sint(m.zext_to(m.bits(a)[:31], WIDE))
    bb = s_(m.uint(m.bits(b)), WIDE)
    x, y = hi * bb, lo * bb

    def amt(v):                  # a shift amount: int, or UInt (wrapping: only the chosen branch matters)
        return m.sint(v, WIDE) if isinstance(v, int) else m.sint(m.zext_to(v, WIDE))

    def low(sh):                 # s <= 31
        return (x << amt(31 - sh)) + ((y + (m.sint(1, WIDE) << amt(sh - 1))) >> amt(sh))

    def high(sh):                # s > 31
        return (x + (m.sint(1, WIDE) << amt(sh - 32)) + (y >> m.sint(31, WIDE))) >> amt(sh - 31)

    if isinstance(s, int):
        if not 1 <= s <= 92:
            raise ValueError(f"mul_rshr_wide: shift {s} out of [1, 92]")
        return low(s) if s <= 31 else high(s)
    n = max(7, len(s))          # every bit of s is used (a lint-clean design), at least 7 for 92
    sh = m.uint(m.zext_to(m.uint(m.bits(s)), n)) if len(s) < n else m.uint(m.bits(s))
    return m.mux([high(sh), low(sh)], sh <= m.uint(31, n))


def tree_sum(terms):
    """The sum of `terms` (same type and width, wrapping) as a balanced tree of adders:
    depth ceil(log2 n) additions instead of n - 1 in a chain (MatVec's lanes, attention's dot)."""
    terms = list(terms)
    while len(terms) > 1:
        nxt = [a + b for a, b in zip(terms[0::2], terms[1::2])]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


# --- products on DSP tiles -----------------------------------------------------------------
DSP_WIDTH = 18        # an ECP5 MULT18X18D multiplies two 18-bit signed operands


def dsp_chunks(x):
    """x (SInt, Bits read as signed, or UInt) as multiplier operands of at most DSP_WIDTH signed
    bits: [(shift, SInt)], low chunk first.  Low chunks are DSP_WIDTH - 1 bits, unsigned (a zero
    on top); the top chunk keeps x's sign.  sum(chunk << shift) = x."""
    b = m.bits(x)
    if not _signed(x):
        b = m.bits(m.zext_to(m.uint(b), len(b) + 1))
    out, at, low = [], 0, DSP_WIDTH - 1
    while len(b) - at > DSP_WIDTH:
        out.append((at, m.sint(m.zext_to(m.uint(b[at:at + low]), DSP_WIDTH))))
        at += low
    out.append((at, m.sint(b[at:])))
    return out


def partial_products(a, b):
    """a * b as [(shift, SInt product)], each product of two operands of at most DSP_WIDTH signed
    bits (one DSP tile), so a pipeline register can sit between the tiles and their sum."""
    out = []
    for sa, ca in dsp_chunks(a):
        for sb, cb in dsp_chunks(b):
            n = len(ca) + len(cb)
            out.append((sa + sb, m.sext_to(ca, n) * m.sext_to(cb, n)))
    return out


def sum_partials(parts, width: int):
    """sum(p << shift) of partial_products as SInt[width] (exact when the product fits)."""
    terms = []
    for sh, p in parts:
        v = s_(p, width - sh) if sh < width else None
        if v is not None:
            terms.append(m.sint(m.concat(m.bits(0, sh), m.bits(v))) if sh else v)
    return tree_sum(terms)


# --- tables --------------------------------------------------------------------------------
def rom(table, addr, width: int, signed: bool = False):
    """table[addr] for a constant table (a sequence of ints from numerics.tables); an
    address past the end reads the last entry.  SInt[width] if signed, else UInt[width]."""
    vals = [int(v) for v in table]
    mk = (lambda v: m.sint(v, width)) if signed else (lambda v: m.uint(v, width))
    words = pad_pow2([m.bits(mk(v)) for v in vals])
    if len(words) == 1:
        out = words[0]
    else:
        n = (len(words) - 1).bit_length()
        out = m.mux(words, m.uint(_ext(m.uint(m.bits(addr)), n, False)))
    return m.sint(out) if signed else m.uint(out)


# --- exp ---------------------------------------------------------------------------------
def exp_neg(x, frac: int = ACT_FRAC, cut=None):
    """e^x for x <= 0 (positive x gives 1.0): SInt[32] Q.frac -> UInt[31] Q1.30 (functions.exp_neg).

    y = rshr(x * log2(e)) (one multiplier), 2^frac(y) interpolated between two exp2_lut
    entries (a second multiplier, 2^8 x 2^(frac-8) bits), then a runtime right shift by
    -floor(y).  Depth: 2 multipliers; with a cut, the stages of latency.EXP_NEG_PIPELINE."""
    k = T.EXP_LUT_BITS
    x = s_(x, ACT_BITS)
    x = cut_at(cut, "exp_x", m.mux([x, m.sint(0, ACT_BITS)], x > m.sint(0, ACT_BITS)))
    y = product(x, m.sint(T.LOG2E_Q30, ACT_BITS), cut, "exp_log2e")       # LOG2E_Q30 < 2^31
    y = cut_at(cut, "exp_y", rshr(y, Q30))                         # <= 0, |y| < 2^33
    yb = m.bits(y)
    n = m.sint(yb[frac:])                                        # floor(y / 2^frac) <= 0
    idx = m.uint(yb[frac - k:frac])
    r = m.uint(yb[:frac - k])
    lut = T.exp2_lut(k)
    t0 = s_(rom(lut[:-1], idx, T.EXP_LUT_WIDTH), WIDE)
    t1 = s_(rom(lut[1:], idx, T.EXP_LUT_WIDTH), WIDE)
    t0, t1, r, n = cut_at(cut, "exp_lut", t0, t1, r, n)
    d, t0, r, n = cut_at(cut, "exp_diff", t1 - t0, t0, r, n)      # t0, t1 in [2^30, 2^31]: d in [0, 2^30]
    kept = keep(cut, t0, n)
    p = product(_ext(d, ACT_BITS), s_(r, frac - k + 1), cut, "exp_interp")
    t0, n = release(cut, kept)
    v = t0 + rshr(p, frac - k)                                   # [2^30, 2^31]
    v, sh = cut_at(cut, "exp_v", v, m.uint(-s_(n, len(n) + 1)))
    out = rshr(v, sh, cut=cut, name="exp")
    return m.uint(m.bits(out)[:MANT_BITS])


# --- reciprocal and rsqrt -----------------------------------------------------------------
def bit_length(a, cut=None, name: str = "lead"):
    """Position of the leading one plus one (0 for 0): UInt[7] for a 64-bit a.

    A leading-one detector by halving: log2(W) steps, each asking whether the upper half
    of the window holds a one (that answer is the next bit of the position) and keeping
    that half or the lower one.  Depth log2(W) instead of a W-long priority chain (which
    also cost the simulator W nested selects every cycle).  With a cut: registered after
    every two steps (`<name>0`, `<name>1`, ...) and after the last (RECIP_PIPELINE's and
    RSQRT_PIPELINE's lead stages in latency.py)."""
    b = m.bits(a)
    W = len(b)
    w = W.bit_length()
    P = 1 << (W - 1).bit_length()                      # the window, a power of two >= W
    v = m.bits(m.zext_to(m.uint(b), P)) if P > W else b
    index = []                                         # the leading one's position, MSB first
    h = P // 2
    step = cuts = 0
    while h >= 1:
        top, bot = v[h:2 * h], v[:h]
        t = m.uint(top) != m.uint(0, h)
        index.append(t)
        v = m.mux([bot, top], t)
        h //= 2
        step += 1
        if step % 2 == 0 and h >= 1:
            v, *index = cut_at(cut, f"{name}{cuts}", m.bits(v), *index)
            cuts += 1
    last = m.zext_to(m.uint(m.bits(v)[0:1]), w)         # 1 unless a = 0
    if not index:
        return cut_at(cut, f"{name}{cuts}", last)
    pos = m.uint(m.bits(list(reversed(index))))
    return cut_at(cut, f"{name}{cuts}", (m.zext_to(pos, w) if len(pos) < w else pos) + last)


def _align(a, n, lead: int, extra=None, cut=None, name: str = "align"):
    """a (UInt[64], leading one at bit n) moved so that its leading one is at bit lead
    (+ extra, a 0/1 bit), rounding half up on right shifts: SInt[64] (functions._align_leading_one).
    A shift_each by lead - n (+ extra)."""
    n = s_(m.uint(n), 8)
    k = m.sint(lead, 8) - n
    if extra is not None:
        k = k + s_(m.uint(m.bits(extra, 1)), 8)
    return shift_each(s_(m.uint(m.bits(a)), WIDE), k, cut, name)


def _scale_result(y, e, cut=None, name: str = "out"):
    """y in (0.5, 1] (Q1.30, SInt[64]) times 2^e (SInt) as a normalised Scale."""
    low = y < m.sint(ONE_Q30, WIDE)
    mant = m.mux([y, y << m.sint(1, WIDE)], low)
    exp = s_(e, EXP_BITS) - s_(m.uint(m.bits(low, 1)), EXP_BITS)
    return cut_at(cut, name, m.uint(m.bits(mant)[:MANT_BITS]), exp)


def _check_frac(frac: int, what: str):
    # exponents frac - 63 .. frac + 1 must fit EXP_BITS signed
    if not (-(1 << (EXP_BITS - 1)) <= frac - 64 and frac + 2 < (1 << (EXP_BITS - 1))):
        raise ValueError(f"{what}: frac {frac} gives exponents outside SInt[{EXP_BITS}]")


NEWTON_BITS = 33      # recip's Newton operands: m in [2^30, 2^31), y near 2^30/m, 2 - m y: |v| < 2^32


def recip(a, frac: int, cut=None):
    """1 / a: UInt[64] a in [1, 2^62] with `frac` fraction bits -> Scale (functions.recip).

    Priority encoder, normalise to m in [1, 2), seed from recip_seed, RECIP_NEWTON Newton
    steps of two multipliers each.  Depth: 2 * RECIP_NEWTON multipliers; with a cut, the
    stages of latency.RECIP_PIPELINE.  a = 0 is outside the domain (the result is meaningless)."""
    _check_frac(frac, "recip")
    kept = keep(cut, a)
    n = s_(bit_length(a, cut, "rcp_lead"), 10) - m.sint(1, 10)
    a, = release(cut, kept)
    kept = keep(cut, n)
    mm = _align(a, n, Q30, cut=cut, name="rcp_align")
    n, = release(cut, kept)
    e = n - m.sint(frac, 10)
    over = mm >= m.sint(1 << 31, WIDE)
    mm = m.mux([mm, m.sint(ONE_Q30, WIDE)], over)
    e = e + s_(m.uint(m.bits(over, 1)), 10)
    k = T.RECIP_LUT_BITS
    mm, e = cut_at(cut, "rcp_norm", _ext(mm, NEWTON_BITS), e)
    y = s_(rom(T.recip_seed(k), m.uint(m.bits(mm)[Q30 - k:Q30]), T.SEED_WIDTH), NEWTON_BITS)
    y, mm, e = cut_at(cut, "rcp_seed", y, mm, e)           # a block RAM's read register
    y, mm, e = cut_at(cut, "rcp_y0", y, mm, e)             # then a register before the multipliers
    kept = keep(cut, mm, e)
    for i in range(T.RECIP_NEWTON):
        kept_y = keep(cut, y)
        my = product(kept[0], y, cut, f"rcp_nr{i}_my")
        d = cut_at(cut, f"rcp_nr{i}_d", _ext(m.sint(2 << Q30, WIDE) - rshr(my, Q30), NEWTON_BITS))
        y, = release(cut, kept_y)
        y = cut_at(cut, f"rcp_nr{i}_y", _ext(rshr(product(y, d, cut, f"rcp_nr{i}_yd"), Q30), NEWTON_BITS))
    mm, e = release(cut, kept)
    return _scale_result(s_(y, WIDE), -e, cut, "rcp_out")


def rsqrt(a, frac: int, cut=None):
    """1 / sqrt(a): UInt[64] a in [1, 2^62] with `frac` fraction bits -> Scale (functions.rsqrt).

    Priority encoder, normalise to m in [1, 4) by the exponent's parity, seed from
    rsqrt_seed (3 * 2^RSQRT_LUT_BITS entries), RSQRT_NEWTON Newton steps of three
    multipliers each.  Depth: 3 * RSQRT_NEWTON multipliers; with a cut, the stages of
    latency.RSQRT_PIPELINE."""
    _check_frac(frac, "rsqrt")
    kept = keep(cut, a)
    n = s_(bit_length(a, cut, "rsq_lead"), 10) - m.sint(1, 10)
    a, = release(cut, kept)
    ne = n - m.sint(frac, 10)
    odd = m.bits(ne)[0]
    kept = keep(cut, ne, odd)
    mm = _align(a, n, Q30, odd, cut=cut, name="rsq_align")
    ne, odd = release(cut, kept)
    half_e = (ne - s_(m.uint(m.bits(odd, 1)), 10)) >> m.sint(1, 10)
    over = mm >= m.sint(1 << 32, WIDE)
    mm = m.mux([mm, m.sint(ONE_Q30, WIDE)], over)
    half_e = half_e + s_(m.uint(m.bits(over, 1)), 10)
    mm, half_e = cut_at(cut, "rsq_norm", _ext(mm, NEWTON_BITS + 1), half_e)    # m in [2^30, 2^32)
    b = T.RSQRT_LUT_BITS
    idx = m.uint(m.bits(mm)[Q30 - b:Q30 + 2]) - m.uint(1 << b, b + 2)
    y = s_(rom(T.rsqrt_seed(b), idx, T.SEED_WIDTH), NEWTON_BITS)
    y, mm, half_e = cut_at(cut, "rsq_seed", y, mm, half_e)  # a block RAM's read register
    y, mm, half_e = cut_at(cut, "rsq_y0", y, mm, half_e)
    kept = keep(cut, mm, half_e)
    for i in range(T.RSQRT_NEWTON):
        kept_y = keep(cut, y)
        y2 = cut_at(cut, f"rsq_nr{i}_y2r", _ext(rshr(product(y, y, cut, f"rsq_nr{i}_y2"), Q30), NEWTON_BITS))
        my2 = product(kept[0], y2, cut, f"rsq_nr{i}_my2")
        d = cut_at(cut, f"rsq_nr{i}_d", _ext(m.sint(3 << Q30, WIDE) - rshr(my2, Q30), NEWTON_BITS))
        y, = release(cut, kept_y)
        y = cut_at(cut, f"rsq_nr{i}_y", _ext(rshr(product(y, d, cut, f"rsq_nr{i}_yd"), Q30 + 1), NEWTON_BITS))
    mm, half_e = release(cut, kept)
    return _scale_result(s_(y, WIDE), -half_e, cut, "rsq_out")


def scale_mul(a, b):
    """The product of two Scales, renormalised (functions.scale_mul).  One multiplier."""
    p = rshr(s_(m.uint(m.bits(a[0])), WIDE) * s_(m.uint(m.bits(b[0])), WIDE), Q30)   # [2^30, 2^32)
    e = s_(a[1], EXP_BITS) + s_(b[1], EXP_BITS)
    one = m.sint(1, EXP_BITS)
    big = p >= m.sint(1 << 31, WIDE)
    p = m.mux([p, rshr(p, 1)], big)
    e = m.mux([e, e + one], big)
    big2 = p >= m.sint(1 << 31, WIDE)
    p = m.mux([p, p >> m.sint(1, WIDE)], big2)
    e = m.mux([e, e + one], big2)
    return m.uint(m.bits(p)[:MANT_BITS]), e


# --- sigmoid and SiLU ------------------------------------------------------------------------
def sigmoid(x, frac: int = ACT_FRAC, cut=None):
    """1 / (1 + e^-x): SInt[32] Q.frac -> UInt[31] Q1.30 (functions.sigmoid).

    exp_neg(-|x|), recip(1 + e), and e * recip for x < 0.  Depth: 2 + 2 * RECIP_NEWTON + 1
    multipliers; with a cut, the stages of latency.SIGMOID_PIPELINE."""
    x = s_(x, ACT_BITS)
    neg = m.bits(x)[ACT_BITS - 1]
    nabs, neg = cut_at(cut, "sig_abs", m.mux([-x, x], neg), neg)   # -|x|, fits: x >= -2^31
    kept = keep(cut, neg)
    e = exp_neg(nabs, frac, cut)
    one_e = m.uint(m.bits(s_(e, WIDE) + m.sint(ONE_Q30, WIDE)))
    e, one_e = cut_at(cut, "sig_one", s_(e, ACT_BITS), one_e)         # e <= 2^30
    kept_e = keep(cut, e)
    mant, exp = recip(one_e, Q30, cut)
    sig = rshr(s_(mant, WIDE), m.uint(-exp), cut=cut, name="sig_s")    # exp is 0 or -1 here
    e, = release(cut, kept_e)
    neg, = release(cut, kept)
    kept = keep(cut, sig, neg)
    es = product(_ext(e, ACT_BITS), _ext(sig, ACT_BITS), cut, "sig_es")   # e <= 2^30, s <= 2^30
    sig, neg = release(cut, kept)
    out = m.mux([sig, rshr(es, Q30)], neg)
    return cut_at(cut, "sig_out", m.uint(m.bits(out)[:MANT_BITS]))


def silu(x, frac: int = ACT_FRAC, cut=None):
    """x * sigmoid(x): SInt[32] Q.frac -> SInt[32] Q.frac (functions.silu).  Depth: sigmoid + 1;
    with a cut, the stages of latency.SILU_PIPELINE."""
    x = s_(x, ACT_BITS)
    kept = keep(cut, x)
    sig = sigmoid(x, frac, cut)
    x, = release(cut, kept)
    p = product(x, s_(sig, ACT_BITS), cut, "silu")
    return cut_at(cut, "silu_out", m.sint(m.bits(rshr(p, Q30))[:ACT_BITS]))


__all__ = ["MANT_BITS", "EXP_BITS", "rshr", "sat", "shift_sat", "shift_each", "apply_scale", "mul_rshr_wide",
           "rom", "exp_neg", "bit_length", "recip", "rsqrt", "scale_mul", "sigmoid", "silu", "ACT_MAX", "ACT_MIN"]
