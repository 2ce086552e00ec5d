"""The nonlinear functions, in integers only.

Each function takes and returns numpy int64 arrays (or Python ints where noted)
and says its input and output formats.  Tables come from `tables`; nothing here
creates a float.  A `Scale` is a positive real as (mant, exp) with mant in
[2^30, 2^31) (unsigned Q1.30, 31 bits) and value mant * 2^(exp - 30): the result
of a reciprocal or rsqrt, applied to activations with one multiply and one shift.
"""

from __future__ import annotations

import numpy as np

from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import (
    ACT_FRAC, ACT_MAX, ACT_MIN, I64, MAX_SHIFT, ONE_Q30, Q30, bit_length, rshr, sat, shift_sat,
)


# --- exp ---------------------------------------------------------------------------------
def exp_neg(x: np.ndarray, frac: int = ACT_FRAC) -> np.ndarray:
    """e^x for x <= 0.

    In:  x, signed Q.frac (int32 range; positive inputs saturate to 0, below -2^31 to -2^31).
    Out: unsigned Q1.30 in [0, 2^30] (e^0 = 2^30 exactly).
    How: y = x * log2(e) (Q1.30 constant, one rounding), y = n + f with n = floor(y) <= 0
    and f in [0, 1); 2^f by linear interpolation between the two table entries around f;
    then a right shift by -n (round half up; shifts past 62 give 0).
    """
    k = T.EXP_LUT_BITS
    x = np.minimum(np.maximum(np.asarray(x, I64), I64(ACT_MIN)), I64(0))
    y = rshr(x * I64(T.LOG2E_Q30), Q30)                 # Q.frac, <= 0
    n = y >> I64(frac)                                  # floor, <= 0
    f = y - (n << I64(frac))                            # [0, 2^frac)
    idx = f >> I64(frac - k)
    r = f & I64((1 << (frac - k)) - 1)
    lut = T.exp2_lut(k)
    t0, t1 = lut[idx], lut[idx + 1]
    v = t0 + rshr((t1 - t0) * r, frac - k)              # Q1.30 in [2^30, 2^31]
    return rshr(v, np.minimum(-n, I64(MAX_SHIFT)))


# --- reciprocal and rsqrt ---------------------------------------------------------------------
def _operand(a, what: str):
    """(is_scalar, a as a 1-d int64 array), refusing a <= 0."""
    scalar = not isinstance(a, np.ndarray)
    a = np.atleast_1d(np.asarray(a, I64))
    if (a <= 0).any():
        raise ValueError(f"{what} of a non-positive value")
    return scalar, a


def _align_leading_one(a: np.ndarray, n: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """a (leading one at bit n) moved so that its leading one is at bit `lead`, rounding half up."""
    k = lead - n
    return np.where(k >= 0, a << np.maximum(k, 0), rshr(a, np.maximum(-k, 0)))


def _scale_result(y: np.ndarray, e: np.ndarray, scalar: bool):
    """y in (0.5, 1] (Q1.30) times 2^e as a normalised Scale."""
    low = y < I64(ONE_Q30)
    mant, exp = np.where(low, y << I64(1), y), e - low
    return (int(mant[0]), int(exp[0])) if scalar else (mant, exp)


def recip(a, frac: int):
    """1 / a.

    In:  a in [1, 2^62] (int64 array or Python int) with `frac` fraction bits.
    Out: Scale (mant, exp), arrays like a (or ints for an int input).
    How: normalise a to m in [1, 2) (Q1.30) by its leading one (a priority encoder), seed
    from a 2^RECIP_LUT_BITS-entry table indexed by m's next bits, RECIP_NEWTON Newton
    steps y <- y * (2 - m*y), each product rounded to Q1.30.
    """
    scalar, a = _operand(a, "recip")
    n = bit_length(a) - 1
    m = _align_leading_one(a, n, I64(Q30))
    e = n - I64(frac)                                   # a_real = m/2^30 * 2^e
    over = m >= I64(1 << 31)                            # rounding carried into bit 31
    m, e = np.where(over, I64(ONE_Q30), m), e + over
    k = T.RECIP_LUT_BITS
    y = T.recip_seed(k)[(m >> I64(Q30 - k)) - I64(1 << k)]
    for _ in range(T.RECIP_NEWTON):
        my = rshr(m * y, Q30)
        y = rshr(y * (I64(2 << Q30) - my), Q30)
    return _scale_result(y, -e, scalar)


def rsqrt(a, frac: int):
    """1 / sqrt(a).

    In:  a in [1, 2^62] (int64 array or Python int) with `frac` fraction bits.
    Out: Scale (mant, exp).
    How: write a = m * 2^(2j) with m in [1, 4) (Q2.30, leading one at bit 30 or 31 by
    the parity of the exponent), seed from a 3 * 2^RSQRT_LUT_BITS-entry table, then
    RSQRT_NEWTON Newton steps y <- y * (3 - m*y^2) / 2, products rounded to Q1.30.
    """
    scalar, a = _operand(a, "rsqrt")
    n = bit_length(a) - 1
    odd = (n - I64(frac)) & I64(1)                      # exponent parity of the real value
    m = _align_leading_one(a, n, I64(Q30) + odd)        # m in [1, 2) or [2, 4)
    half_e = (n - I64(frac) - odd) >> I64(1)            # a_real = m/2^30 * 2^(2 half_e)
    over = m >= I64(1 << 32)                            # rounding carried to 4.0
    m, half_e = np.where(over, I64(ONE_Q30), m), half_e + over
    b = T.RSQRT_LUT_BITS
    y = T.rsqrt_seed(b)[(m >> I64(Q30 - b)) - I64(1 << b)]
    for _ in range(T.RSQRT_NEWTON):
        y2 = rshr(y * y, Q30)
        my2 = rshr(m * y2, Q30)
        y = rshr(y * (I64(3 << Q30) - my2), Q30 + 1)
    return _scale_result(y, -half_e, scalar)


def scale_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The product of two Scales (Python ints), renormalised."""
    m = rshr(a[0] * b[0], Q30)                          # [2^30, 2^32)
    e = a[1] + b[1]
    if m >= 1 << 31:
        m, e = rshr(m, 1), e + 1
    if m >= 1 << 31:
        m, e = m >> 1, e + 1
    return m, e


def apply_scale(x: np.ndarray, s: tuple[int, int], bits: int = 32) -> np.ndarray:
    """x * scale, same fraction bits as x, saturated to `bits`.  x: int32 range, s: one Scale."""
    mant, exp = s
    return shift_sat(np.asarray(x, I64) * I64(mant), exp - Q30, bits)


# --- sigmoid and SiLU ---------------------------------------------------------------------------
def sigmoid(x: np.ndarray, frac: int = ACT_FRAC) -> np.ndarray:
    """1 / (1 + e^-x).

    In:  x signed Q.frac (int32 range).  Out: unsigned Q1.30 in [0, 2^30].
    How: e = exp_neg(-|x|), s = recip(1 + e) (in [1/2, 1]); sigma = s for x >= 0 and
    e * s for x < 0 (= e^x / (1 + e^x), which keeps relative precision for large |x|).
    """
    x = sat(np.asarray(x, I64))
    e = exp_neg(-np.abs(x), frac)
    mant, exp = recip(I64(ONE_Q30) + e, Q30)
    s = rshr(mant, -exp)                                # exp is 0 or -1 here: Q1.30
    return np.where(x >= 0, s, rshr(e * s, Q30))


def silu(x: np.ndarray, frac: int = ACT_FRAC) -> np.ndarray:
    """x * sigmoid(x).  In and out: signed Q.frac (int32 range); |out| <= |x|."""
    x = sat(np.asarray(x, I64))
    return rshr(x * sigmoid(x, frac), Q30)


# --- argmax -----------------------------------------------------------------------------------
def argmax(x: np.ndarray) -> int:
    """Index of the largest value; on a tie the first (run.c keeps the first maximum)."""
    x = np.asarray(x)
    best = x.max()
    return int(np.flatnonzero(x == best)[0])


# --- online softmax ----------------------------------------------------------------------------
def online_softmax_runs(scores: np.ndarray, frac: int = ACT_FRAC):
    """The running max of the online softmax, split into runs where it is constant.

    In:  scores, signed Q.frac (int32 range), [T] or [H, T] (one row per head), positions
    0..pos in stream order.
    Out: (starts, alpha, p): starts[k] is the first position of run k in the flattened
    scores (every row starts a run at its position 0); alpha[k] = e^(M_(k-1) - M_k) in
    Q1.30 (2^30 for a row's first run), the factor by which the running sum and the
    weighted-V accumulator are rescaled when run k starts; p = e^(s_t - M_t) in Q1.30,
    shaped like scores, with M_t the running max at t.

    The hardware keeps (M, l, O) and, per score s_t: if t == 0, M = s_t; elif s_t > M,
    rescales l and O by alpha = e^(M - s_t) and sets M = s_t; then adds p_t = e^(s_t - M)
    to l and p_t * v_t to O.  Within a run everything is a sum of integers, so the
    golden model forms all p and alpha with one vector operation each.
    """
    s = np.asarray(scores, I64)
    s2 = s.reshape(-1, s.shape[-1])
    t = s2.shape[1]
    run_max = np.maximum.accumulate(s2, axis=1)
    new = np.ones(s2.shape, bool)
    new[:, 1:] = s2[:, 1:] > run_max[:, :-1]
    starts = np.flatnonzero(new.ravel()).astype(I64)
    flat_max = run_max.ravel()
    first = starts % I64(t) == 0
    alpha = np.where(first, I64(ONE_Q30), exp_neg(flat_max[np.maximum(starts - 1, 0)] - flat_max[starts], frac))
    p = exp_neg(s2 - run_max, frac).reshape(s.shape)
    return starts, alpha, p


def online_softmax(scores: np.ndarray, frac: int = ACT_FRAC) -> np.ndarray:
    """Softmax probabilities (Q1.30) from the online softmax's p, alpha and l, for tests.

    Each p_t is rescaled by the alphas of the later runs (rounding as the running sum
    does), then multiplied by recip(l).
    """
    starts, alpha, p = online_softmax_runs(scores, frac)
    bounds = starts.tolist() + [p.size]
    l, weights = 0, []
    for k in range(starts.size):
        a = int(alpha[k])
        l = rshr(l * a, Q30) + int(p[bounds[k]:bounds[k + 1]].sum())
        weights = [rshr(w * I64(a), Q30) for w in weights] + [p[bounds[k]:bounds[k + 1]]]
    mant, exp = recip(l, Q30)
    w = np.concatenate(weights)
    return shift_sat(w * I64(mant), exp - Q30, 64)


__all__ = [
    "exp_neg", "online_softmax_runs", "online_softmax", "recip", "rsqrt", "scale_mul", "apply_scale",
    "sigmoid", "silu", "argmax",
    "ACT_MAX", "ACT_MIN",
]
