"""The integer primitives and nonlinear functions against exact or float maths, with stated bounds.

Every function is swept over its whole input range (dense near zero, random over the
rest, the extremes and the saturating inputs included).  The bounds are the ones
docs/numerics.md states.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import (
    ACT_FRAC, ACT_MAX, ACT_MIN, I64, bit_length, mul_rshr_wide, rshr, sat, shift_each, shift_sat,
)
from magma_llama.numerics.functions import (
    apply_scale, argmax, exp_neg, online_softmax, online_softmax_runs, recip, rsqrt, scale_mul, sigmoid, silu,
)

F = ACT_FRAC
RNG = np.random.default_rng(20261123)

# stated error bounds (docs/numerics.md)
EXP_REL, EXP_ABS_LSB = 1.6e-6, 1.0        # |e - 2^30 e^x| <= EXP_REL * 2^30 e^x + 1 LSB (Q1.30)
RECIP_REL = 2.5e-9
RSQRT_REL = 3e-9
SIGMOID_ABS = 4e-7
SILU_REL = 4e-7                            # |y - silu(x)| <= SILU_REL * |x| + 2^-F
SOFTMAX_ABS = 5e-7


def _scale_value(mant, exp):
    return np.asarray(mant, np.float64) * np.exp2(np.asarray(exp, np.float64) - 30)


def _act_range(n_random=100_000):
    """Q.F inputs: dense around 0, random over int32, both extremes."""
    return np.concatenate([np.arange(-(1 << 22), 1 << 22, 97, dtype=I64),
                           RNG.integers(ACT_MIN, ACT_MAX, n_random, dtype=I64, endpoint=True),
                           np.array([ACT_MIN, ACT_MIN + 1, -1, 0, 1, ACT_MAX], I64)])


# --- primitives ---------------------------------------------------------------------------------
def test_rshr_rounds_half_up_and_sat_clips():
    x = RNG.integers(-(1 << 40), 1 << 40, 20_000, dtype=I64)
    for s in (1, 3, 16, 30):
        want = np.array([math.floor(int(v) / 2 ** s + 0.5) for v in x[:2000]], I64)
        assert (rshr(x[:2000], s) == want).all()
    assert rshr(np.array([5, -5, 6, -6, 7, -7], I64), 1).tolist() == [3, -2, 3, -3, 4, -3]
    assert rshr(-5, 1) == -2 and rshr(5, 1) == 3
    assert sat(np.array([1 << 40, -(1 << 40), 7], I64)).tolist() == [ACT_MAX, ACT_MIN, 7]
    assert shift_sat(np.array([1 << 20, -(1 << 20), 3], I64), 12).tolist() == [ACT_MAX, ACT_MIN, 3 << 12]
    k = RNG.integers(-40, 20, 2000, dtype=I64)
    v = RNG.integers(-(1 << 30), 1 << 30, 2000, dtype=I64)
    want = [int(a) << int(b) if b >= 0 else (int(a) + (1 << (-int(b) - 1))) >> -int(b) for a, b in zip(v, k)]
    assert shift_each(v, k).tolist() == want


def test_bit_length_is_a_priority_encoder():
    a = np.concatenate([RNG.integers(0, 1 << 62, 5000, dtype=I64), np.array([0, 1, 2, 3, (1 << 63) - 1], I64)])
    assert bit_length(a).tolist() == [int(v).bit_length() for v in a]
    assert bit_length(np.array([12345], I64)).tolist() == [14]


def test_mul_rshr_wide_is_exact():
    for s in (1, 17, 30, 31, 32, 40, 62, 75, 92):
        b = int(RNG.integers(0, 1 << 31))
        lim = min((1 << 62) // max(b, 1) << s, 1 << 62)   # keep the result inside 64 bits
        a = RNG.integers(-lim, lim, 3000, dtype=I64)
        want = [(int(v) * b + (1 << (s - 1))) >> s for v in a]
        assert mul_rshr_wide(a, b, s).tolist() == want


# --- exp ------------------------------------------------------------------------------------------
def test_exp_neg_bound_over_the_whole_range():
    x = _act_range()
    got = exp_neg(x)
    want = np.exp(np.minimum(x, 0) / 2.0 ** F) * 2.0 ** 30
    assert (np.abs(got - want) <= EXP_REL * want + EXP_ABS_LSB).all()
    assert got.dtype == I64 and got.min() >= 0 and got.max() == 1 << 30
    assert exp_neg(np.array([0], I64))[0] == 1 << 30            # e^0 exactly one
    assert exp_neg(np.array([ACT_MIN], I64))[0] == 0            # saturated far tail
    assert exp_neg(np.array([1 << 25, ACT_MAX], I64)).tolist() == [1 << 30, 1 << 30]  # x > 0 saturates to 0
    assert (np.diff(exp_neg(np.arange(-(1 << 21), 1, 5, dtype=I64))) >= 0).all()     # monotone


def test_exp_lut_is_two_to_the_fraction():
    lut = T.exp2_lut()
    assert lut.size == (1 << T.EXP_LUT_BITS) + 1 and lut[0] == 1 << 30 and lut[-1] == 1 << 31
    assert lut.max() < 1 << T.EXP_LUT_WIDTH


# --- reciprocal and rsqrt ---------------------------------------------------------------------------
def _positive_range():
    return np.concatenate([RNG.integers(1, 1 << 62, 50_000, dtype=I64),
                           np.left_shift(I64(1), np.arange(63, dtype=I64)[:63].clip(0, 62)),
                           np.left_shift(I64(1), np.arange(62, dtype=I64)) - 1 + (np.arange(62) == 0),
                           np.array([1, 2, 3, 5, 7, (1 << 62)], I64)])


@pytest.mark.parametrize("frac", [0, 20, 30, 40])
def test_recip_bound(frac):
    a = _positive_range()
    mant, exp = recip(a, frac)
    assert (mant >= 1 << 30).all() and (mant < 1 << 31).all()
    rel = np.abs(_scale_value(mant, exp) * (a.astype(np.float64) / 2.0 ** frac) - 1)
    assert rel.max() <= RECIP_REL
    assert recip(int(a[7]), frac) == (int(mant[7]), int(exp[7]))     # scalar path, same function


@pytest.mark.parametrize("frac", [0, 24, 30, 41])
def test_rsqrt_bound(frac):
    a = _positive_range()
    mant, exp = rsqrt(a, frac)
    assert (mant >= 1 << 30).all() and (mant < 1 << 31).all()
    rel = np.abs(_scale_value(mant, exp) * np.sqrt(a.astype(np.float64) / 2.0 ** frac) - 1)
    assert rel.max() <= RSQRT_REL
    assert rsqrt(int(a[3]), frac) == (int(mant[3]), int(exp[3]))


def test_recip_and_rsqrt_are_exact_on_powers_of_two():
    p = np.left_shift(I64(1), np.arange(0, 62, 2, dtype=I64))
    assert set(recip(p, 10)[0].tolist()) == {1 << 30} and set(rsqrt(p, 10)[0].tolist()) == {1 << 30}
    assert recip(1 << 33, 30) == (1 << 30, -3) and rsqrt(1 << 34, 30) == (1 << 30, -2)


def test_recip_and_rsqrt_refuse_non_positive():
    with pytest.raises(ValueError):
        recip(0, 30)
    with pytest.raises(ValueError):
        rsqrt(np.array([4, -1], I64), 0)


def test_scale_mul_and_apply():
    a, b = T.scale_const(math.sqrt(288)), T.scale_const(1 / 3)
    m, e = scale_mul(a, b)
    assert 1 << 30 <= m < 1 << 31
    assert abs(_scale_value(m, e) / (math.sqrt(288) / 3) - 1) < 3e-9
    x = RNG.integers(-(1 << 28), 1 << 28, 1000, dtype=I64)
    got = apply_scale(x, b)
    assert np.abs(got - x / 3).max() <= 0.5 + 1e-6
    assert apply_scale(np.array([ACT_MAX], I64), T.scale_const(4.0)).tolist() == [ACT_MAX]   # saturates


# --- sigmoid and SiLU -----------------------------------------------------------------------------
def test_sigmoid_bound():
    x = _act_range()
    got = sigmoid(x) / 2.0 ** 30
    want = 1 / (1 + np.exp(-np.clip(x / 2.0 ** F, -700, 700)))
    assert np.abs(got - want).max() <= SIGMOID_ABS
    assert sigmoid(np.array([0], I64))[0] == 1 << 29
    assert sigmoid(np.array([ACT_MIN], I64))[0] == 0 and sigmoid(np.array([ACT_MAX], I64))[0] == 1 << 30


def test_silu_bound():
    x = _act_range()
    xf = x / 2.0 ** F
    got = silu(x) / 2.0 ** F
    want = xf / (1 + np.exp(-np.clip(xf, -700, 700)))
    assert (np.abs(got - want) <= SILU_REL * np.abs(xf) + 2.0 ** -F).all()
    assert (np.abs(silu(x)) <= np.abs(x)).all()


# --- online softmax, argmax -----------------------------------------------------------------------
@pytest.mark.parametrize("scale", [0.001, 0.3, 5.0, 300.0, 3000.0])
@pytest.mark.parametrize("n", [1, 2, 31, 512])
def test_online_softmax_bound(scale, n):
    s = sat(np.floor(RNG.standard_normal(n) * scale * 2 ** F).astype(I64))
    got = online_softmax(s) / 2.0 ** 30
    sf = s / 2.0 ** F
    want = np.exp(sf - sf.max())
    want /= want.sum()
    assert np.abs(got - want).max() <= SOFTMAX_ABS


def test_online_softmax_runs_follow_the_running_max():
    s = np.array([3, 1, 5, 5, 2, 9, 0, 9, 10], I64) << I64(F)
    starts, alpha, p = online_softmax_runs(s)
    assert starts.tolist() == [0, 2, 5, 8]                  # a new run only where the max rises strictly
    assert alpha[0] == 1 << 30 and (alpha[1:] < 1 << 30).all()
    assert p[[0, 2, 3, 5, 7, 8]].tolist() == [1 << 30] * 6   # e^0 at every current max


def test_argmax_first_index_on_ties():
    x = np.array([3, 9, 1, 9, 9], I64)
    assert argmax(x) == 1 == int(np.argmax(x))
    assert argmax(np.full(7, ACT_MIN, I64)) == 0


# --- RoPE tables -----------------------------------------------------------------------------------
def test_rope_tables_are_q2_30_of_runc_angles():
    from magma_llama.reference import libm
    cos, sin = T.rope_tables(8, 512)
    assert cos.shape == (512, 4) and cos.dtype == I64
    assert cos[0].tolist() == [1 << 30] * 4 and sin[0].tolist() == [0] * 4
    head_dim = np.arange(0, 8, 2).astype(np.float32)
    freq = np.float32(1.0) / libm.powf(10000.0, head_dim / np.float32(8))
    pos = 337
    ang = (np.float32(pos) * freq).astype(np.float64)
    assert np.abs(cos[pos] - np.cos(ang) * 2 ** 30).max() <= 0.5
    assert np.abs(sin[pos] - np.sin(ang) * 2 ** 30).max() <= 0.5
    assert np.abs(cos.max()) <= 1 << 30 and np.abs(sin).max() <= 1 << 30


def test_every_rom_fits_its_stated_width():
    roms = T.rom_contents(8, 512)
    assert set(roms) == {"exp2_lut", "recip_seed", "rsqrt_seed", "rope_cos", "rope_sin"}
    for name, (data, width, signed) in roms.items():
        assert data.dtype == I64, name
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        assert lo <= data.min() and data.max() <= hi, name
    assert 0 < T.LOG2E_Q30 < 1 << 31 and 0 < T.inv_sqrt_q30(8) < 1 << 31
