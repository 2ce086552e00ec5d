"""Fixed-point formats and the integer primitives every stage is built from.

All run-time values are integers held in numpy int64 (or Python int for a few
per-vector scalars); the bit widths below say how wide the hardware register is.
One rounding rule everywhere: a right shift rounds half up, `(x + 2^(s-1)) >> s`
with an arithmetic shift (so -2.5 -> -2, 2.5 -> 3).  One overflow rule: a value
stored into a narrower register saturates to that register's range.
"""

from __future__ import annotations

import numpy as np

I64 = np.int64

# --- activations: signed fixed point in 32 bits ------------------------------------
ACT_BITS = 32
ACT_FRAC = 20            # Q12.20: 11 integer bits + sign, 20 fraction bits (docs/numerics.md says why)
ACT_MIN = -(1 << (ACT_BITS - 1))
ACT_MAX = (1 << (ACT_BITS - 1)) - 1

# --- accumulators -------------------------------------------------------------------
ACC_BITS = 64            # every sum of products is an int64 register

# --- fractions of fixed-format internal values -----------------------------------
Q30 = 30                 # probabilities, exp() results, RoPE cos/sin, Scale mantissas
ONE_Q30 = 1 << Q30
DOT_SHIFT = 16           # x*y products (2F fraction bits) are rounded by this before summing
MATVEC_EXTRA = 16        # a matvec accumulator keeps F + MATVEC_EXTRA fraction bits
ATT_EXTRA = 12           # the attention V accumulator keeps F + ATT_EXTRA fraction bits
MAX_SHIFT = 62           # right shifts by more than this give the same result as 62


def sat(x, bits: int = ACT_BITS):
    """Saturate to a signed `bits`-wide register (array or Python int)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(x, np.ndarray):
        return np.minimum(np.maximum(x, I64(lo)), I64(hi))
    return min(max(int(x), lo), hi)


def rshr(x, s):
    """Round-half-up arithmetic right shift by s >= 0 (s: int or int64 array)."""
    if isinstance(s, np.ndarray):
        s = np.minimum(s, MAX_SHIFT)
        return (x + (np.left_shift(I64(1), s) >> 1)) >> s
    if isinstance(x, np.ndarray):
        s = min(int(s), MAX_SHIFT)
        return (x + I64((1 << s) >> 1)) >> I64(s)
    return (int(x) + ((1 << int(s)) >> 1)) >> int(s)


def shift(x, k: int):
    """x * 2^k: a left shift for k >= 0, else `rshr` by -k.  The caller keeps it in range."""
    k = int(k)
    if k >= 0:
        return x << (I64(k) if isinstance(x, np.ndarray) else k)
    return rshr(x, -k)


def shift_sat(x, k: int, bits: int = ACT_BITS):
    """x * 2^k stored in a `bits`-wide register: rounds (k < 0) or saturates (k > 0)."""
    k = int(k)
    if k <= 0:
        return sat(rshr(x, -k), bits)
    limit = ((1 << (bits - 1)) - 1) >> k
    if isinstance(x, np.ndarray):
        return sat(np.minimum(np.maximum(x, I64(-limit - 1)), I64(limit + 1)) << I64(k), bits)
    return sat(min(max(int(x), -limit - 1), limit + 1) << k, bits)


def shift_each(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Element-wise x * 2^k (k an int64 array), rounding where k < 0; no saturation."""
    lsh = np.maximum(k, 0)
    rsh = np.minimum(np.maximum(-k, 0), MAX_SHIFT)
    return ((x << lsh) + (np.left_shift(I64(1), rsh) >> 1)) >> rsh


def bit_length(a):
    """Position of the leading one plus one (0 for 0): a priority encoder, for a >= 0."""
    if not isinstance(a, np.ndarray):
        return int(a).bit_length()
    if a.size == 1:                                     # fast path, same function
        return np.full(a.shape, int(a.ravel()[0]).bit_length(), I64)
    a = a.astype(I64, copy=True)
    n = np.zeros(a.shape, I64)
    for s in (32, 16, 8, 4, 2, 1):
        hi = (a >> I64(s)) > 0
        n += np.where(hi, I64(s), I64(0))
        a = np.where(hi, a >> I64(s), a)
    return n + (a > 0)


def mul_rshr_wide(a: np.ndarray, b: int, s: int) -> np.ndarray:
    """round_half_up(a * b / 2^s) exactly, for int64 a and 0 <= b < 2^31, 1 <= s <= 92.

    The hardware has a 64 x 31 multiplier whose 95-bit product is shifted; numpy has
    no 128-bit integers, so the product is split at bit 31 (a = hi * 2^31 + lo).
    The caller guarantees the result fits in 64 bits.
    """
    b, s = int(b), int(s)
    if not 0 <= b < (1 << 31) or not 1 <= s <= 92:
        raise ValueError(f"mul_rshr_wide: b={b}, s={s} out of range")
    a = np.asarray(a, I64)
    hi, lo = a >> I64(31), a & I64((1 << 31) - 1)
    x, y = hi * I64(b), lo * I64(b)        # a*b = x * 2^31 + y, 0 <= y < 2^62
    if s <= 31:
        return (x << I64(31 - s)) + ((y + I64(1 << (s - 1))) >> I64(s))
    return (x + I64(1 << (s - 32)) + (y >> I64(31))) >> I64(s - 31)


def to_float(x, frac: int = ACT_FRAC) -> np.ndarray:
    """For reports and tests only (never in the datapath): the real value of Q.frac integers."""
    return np.asarray(x, dtype=np.float64) / float(1 << frac)


def from_float(x, frac: int = ACT_FRAC, bits: int = ACT_BITS) -> np.ndarray:
    """Host-side conversion of real values to Q.frac (round half up, saturate)."""
    v = np.floor(np.asarray(x, dtype=np.float64) * float(1 << frac) + 0.5)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(v, lo, hi).astype(I64)
