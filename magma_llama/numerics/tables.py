"""Constants and look-up tables, computed once at elaboration time.

This is the only numerics module that uses floating point: it turns real
constants into the integers a ROM holds.  The golden model and the Magma
generators both call these functions, so a table exists in one place only.
Every table is a numpy int64 array whose entries fit the width named beside it.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from magma_llama.numerics.fixed import I64, ONE_Q30, Q30

# exp: 2^f for f in [0, 1) from a table of 2^EXP_LUT_BITS + 1 entries, linearly interpolated
EXP_LUT_BITS = 8
EXP_LUT_WIDTH = 32            # unsigned Q1.30 entries in [2^30, 2^31]
# reciprocal and rsqrt: table seed, then Newton steps
RECIP_LUT_BITS = 8            # 256 entries over [1, 2)
RECIP_NEWTON = 2
RSQRT_LUT_BITS = 8            # 3 * 256 entries over [1, 4)
RSQRT_NEWTON = 2
SEED_WIDTH = 31               # unsigned Q1.30 seeds in (0.5, 1]
# RoPE
ROPE_FRAC = 30                # cos/sin in signed Q2.30 (32 bits)
ROPE_THETA = 10000.0
# RMSNorm
RMS_EPS = 1e-5


def q30(x: float) -> int:
    """A real constant as Q.30, rounded half up."""
    return int(math.floor(x * ONE_Q30 + 0.5))


LOG2E_Q30 = q30(math.log2(math.e))    # 1549082005, fits 31 bits unsigned


@lru_cache(maxsize=None)
def exp2_lut(bits: int = EXP_LUT_BITS) -> np.ndarray:
    """T[i] = 2^(i / 2^bits) in Q1.30, i = 0 .. 2^bits (the last entry is 2.0 for interpolation)."""
    i = np.arange((1 << bits) + 1, dtype=np.float64)
    return np.floor(np.exp2(i / (1 << bits)) * ONE_Q30 + 0.5).astype(I64)


@lru_cache(maxsize=None)
def recip_seed(bits: int = RECIP_LUT_BITS) -> np.ndarray:
    """Seed[i] = 1 / m at the middle of m's interval [1 + i/2^bits, 1 + (i+1)/2^bits), Q1.30."""
    mid = 1.0 + (np.arange(1 << bits, dtype=np.float64) + 0.5) / (1 << bits)
    return np.floor(ONE_Q30 / mid + 0.5).astype(I64)


@lru_cache(maxsize=None)
def rsqrt_seed(bits: int = RSQRT_LUT_BITS) -> np.ndarray:
    """Seed[i] = 1 / sqrt(m) at the middle of [1 + i/2^bits, 1 + (i+1)/2^bits), m in [1, 4), Q1.30."""
    mid = 1.0 + (np.arange(3 << bits, dtype=np.float64) + 0.5) / (1 << bits)
    return np.floor(ONE_Q30 / np.sqrt(mid) + 0.5).astype(I64)


def scale_const(x: float) -> tuple[int, int]:
    """A positive real constant as a Scale (mant in [2^30, 2^31), exp): x = mant * 2^(exp - 30)."""
    m, e = math.frexp(x)            # x = m * 2^e, m in [0.5, 1)
    mant = int(math.floor(m * 2 * ONE_Q30 + 0.5))
    exp = e - 1
    if mant == 1 << 31:
        mant, exp = ONE_Q30, exp + 1
    return mant, exp


def sqrt_scale(n: int) -> tuple[int, int]:
    """sqrt(n) as a Scale (RMSNorm: rsqrt(ss/dim + eps) = sqrt(dim) * rsqrt(ss + dim*eps))."""
    return scale_const(math.sqrt(n))


def inv_sqrt_q30(n: int) -> int:
    """1 / sqrt(n) in Q1.30 (attention's score scale, n = head size)."""
    return q30(1.0 / math.sqrt(n))


def rms_eps_term(dim: int, frac: int) -> int:
    """dim * eps in the sum-of-squares format (frac fraction bits), rounded half up.

    rsqrt(ss/dim + eps) = sqrt(dim) * rsqrt(ss + dim*eps), so the mean needs no divider.
    """
    return max(1, int(math.floor(RMS_EPS * dim * (1 << frac) + 0.5)))  # >= 1: rsqrt needs ss > 0


@lru_cache(maxsize=None)
def rope_tables(head_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of pos * freq_i for pos < seq_len, i < head_size/2, signed Q2.30, [seq_len, hs/2].

    The angle is formed as run.c forms it (float32 freq = 1/powf(10000, 2i/hs), float32
    product pos * freq) so the table follows llama2.c; cos and sin of that angle are
    then taken in double precision and rounded to Q2.30.
    """
    from magma_llama.reference import libm
    f32 = np.float32
    head_dim = (np.arange(0, head_size, 2) % head_size).astype(f32)
    freq = f32(1.0) / libm.powf(ROPE_THETA, head_dim / f32(head_size))
    ang = (np.arange(seq_len, dtype=f32)[:, None] * freq[None, :]).astype(np.float64)
    one = float(1 << ROPE_FRAC)
    cos = np.floor(np.cos(ang) * one + 0.5).astype(I64)
    sin = np.floor(np.sin(ang) * one + 0.5).astype(I64)
    return cos, sin


def rom_contents(head_size: int, seq_len: int) -> dict[str, tuple[np.ndarray, int, bool]]:
    """Every ROM a decoder of this shape holds: name -> (contents, entry width in bits, signed)."""
    cos, sin = rope_tables(head_size, seq_len)
    return {
        "exp2_lut": (exp2_lut(), EXP_LUT_WIDTH, False),
        "recip_seed": (recip_seed(), SEED_WIDTH, False),
        "rsqrt_seed": (rsqrt_seed(), SEED_WIDTH, False),
        "rope_cos": (cos, ROPE_FRAC + 2, True),
        "rope_sin": (sin, ROPE_FRAC + 2, True),
    }
