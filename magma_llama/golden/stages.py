"""The hardware stages, one function each, in the integer arithmetic the RTL implements.

Activations are int64 arrays holding signed Q.F values in the int32 range (F =
`frac`, ACT_FRAC by default); every stage saturates what it stores to 32 bits.
Each function is the contract for one Magma stage; its docstring says the order
of the hardware's operations where rounding makes order matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import (
    ACT_FRAC, ATT_EXTRA, DOT_SHIFT, I64, MATVEC_EXTRA, Q30, mul_rshr_wide, rshr, sat, shift_each,
)
from magma_llama.numerics.functions import (
    apply_scale, online_softmax_runs, recip, rsqrt, scale_mul, silu,
)
from magma_llama.numerics.weights import QuantMatrix


@dataclass
class MatVecWeights:
    """A quantized matrix prepared for the matvec stage: groups padded with zero mantissas.

    mant [rows, ngroups, G]; lsh/rsh/bias [rows, ngroups, 1]: each product m*x is shifted by
    k = e + MATVEC_EXTRA, left by lsh = max(k, 0) or right by rsh = max(-k, 0) with the
    rounding bias 2^(rsh-1).
    """

    mant: np.ndarray
    lsh: np.ndarray
    rsh: np.ndarray
    bias: np.ndarray
    rows: int
    cols: int

    @classmethod
    def from_quant(cls, q: QuantMatrix) -> "MatVecWeights":
        ng = q.exp.shape[1]
        mant = np.zeros((q.rows, ng * q.group), I64)
        mant[:, : q.cols] = q.mant
        k = (q.exp + MATVEC_EXTRA)[..., None]
        lsh, rsh = np.maximum(k, 0), np.maximum(-k, 0)
        bias = np.left_shift(I64(1), rsh) >> 1
        return cls(mant.reshape(q.rows, ng, q.group), lsh, rsh, bias, q.rows, q.cols)


def matvec(w: MatVecWeights, x: np.ndarray) -> np.ndarray:
    """y = W x.  In: x Q.F [cols].  Out: Q.F [rows], saturated.

    Per weight: p = m * x (N x 32 bits), term = p << lsh or rshr(p, rsh) (F + MATVEC_EXTRA
    fraction bits), summed in a 64-bit accumulator (exact: the bound is checked when the
    image is read); per row: y = sat32(rshr(acc, MATVEC_EXTRA)).
    """
    ng, g = w.mant.shape[1], w.mant.shape[2]
    xp = np.zeros(ng * g, I64)
    xp[: w.cols] = x
    p = w.mant * xp.reshape(1, ng, g)
    terms = ((p << w.lsh) + w.bias) >> w.rsh
    acc = terms.sum(axis=(1, 2))
    return sat(rshr(acc, MATVEC_EXTRA))


@dataclass
class GainVector:
    """RMSNorm gain g = m * 2^e per element (GAIN_BITS mantissas, one exponent per group)."""

    mant: np.ndarray
    exp: np.ndarray

    @classmethod
    def from_quant(cls, q: QuantMatrix) -> "GainVector":
        return cls(q.mant[0].copy(), q.exp_per_weight()[0].copy())


def sum_of_squares(x: np.ndarray) -> int:
    """ss = sum rshr(x_i^2, DOT_SHIFT): 64-bit, 2F - DOT_SHIFT fraction bits; no overflow for dim <= 2^16."""
    return int(rshr(x * x, DOT_SHIFT).sum())


@dataclass(frozen=True)
class RmsNormConsts:
    """Per-dimension constants of RMSNorm, fixed at elaboration."""

    dim: int
    frac: int
    eps_term: int            # dim * eps in the sum-of-squares format
    sqrt_dim: tuple          # Scale of sqrt(dim)

    @classmethod
    def make(cls, dim: int, frac: int = ACT_FRAC) -> "RmsNormConsts":
        ss_frac = 2 * frac - DOT_SHIFT
        return cls(dim, frac, T.rms_eps_term(dim, ss_frac), T.sqrt_scale(dim))


def rmsnorm(x: np.ndarray, gain: GainVector, c: RmsNormConsts) -> np.ndarray:
    """x * rsqrt(mean(x^2) + eps) * g.  In: x Q.F [dim].  Out: Q.F [dim].

    1. ss = sum_of_squares(x) + dim*eps (one pass over x);
    2. r = rsqrt(ss) * sqrt(dim) (a Scale; 1/dim folded into the constant);
    3. per element: u = sat32(x * r), out = sat32(shift(u * g_mant, g_exp)).
    """
    ss = sum_of_squares(x) + c.eps_term
    r = scale_mul(rsqrt(ss, 2 * c.frac - DOT_SHIFT), c.sqrt_dim)
    u = apply_scale(x, r)
    return sat(shift_each(u * gain.mant, gain.exp))


def embed(q: QuantMatrix, token: int, frac: int = ACT_FRAC) -> np.ndarray:
    """Row `token` of the embedding as Q.F: m * 2^(e + F), rounded, saturated."""
    e = np.repeat(q.exp[token], q.group)[: q.cols]
    return sat(shift_each(q.mant[token].copy(), e + I64(frac)))


def rope(vec: np.ndarray, pos: int, head_size: int, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate pairs (v0, v1) of each head by pos * freq_i.  In/out: Q.F; cos/sin: Q2.30 tables.

    out0 = sat32(rshr(v0*c - v1*s, 30)), out1 = sat32(rshr(v0*s + v1*c, 30)).
    """
    c = np.tile(cos[pos], vec.size // head_size)
    s = np.tile(sin[pos], vec.size // head_size)
    v0, v1 = vec[0::2], vec[1::2]
    out = np.empty_like(vec)
    out[0::2] = sat(rshr(v0 * c - v1 * s, T.ROPE_FRAC))
    out[1::2] = sat(rshr(v0 * s + v1 * c, T.ROPE_FRAC))
    return out


def attention_scores(q: np.ndarray, keys: np.ndarray, isq: int, frac: int = ACT_FRAC) -> np.ndarray:
    """s_ht = q_h . k_ht / sqrt(hs).  In: q [H, hs], keys [T, H, hs] Q.F; isq = 1/sqrt(hs) in Q1.30.
    Out: [H, T] Q.F.

    dot = sum rshr(q_i k_i, DOT_SHIFT) (64-bit, 2F - DOT_SHIFT fraction bits);
    s = sat32(round(dot * isq / 2^(30 + F - DOT_SHIFT))) with one 64 x 31 multiply.
    """
    dot = rshr(keys * q[None], DOT_SHIFT).sum(axis=2).T
    return sat(mul_rshr_wide(dot, isq, Q30 + frac - DOT_SHIFT))


def attention(q: np.ndarray, keys: np.ndarray, values: np.ndarray, isq: int,
              frac: int = ACT_FRAC) -> np.ndarray:
    """Query heads over positions 0..pos, each head independent (the hardware may run them one
    after the other).  In: q [H, hs], keys/values [T, H, hs] Q.F (the KV head of each query
    head, GQA already resolved).  Out: [H, hs] Q.F.

    Per head, online softmax in stream order (numerics.functions.online_softmax_runs).  When
    the running max rises (a new run starts): l = rshr(l * alpha, 30), O_i = rshr(O_i * alpha, 30)
    (64 x 31 multiplies).  Every position: l += p_t (Q.30, 64-bit) and
    O_i += rshr(p_t * v_ti, 30 - ATT_EXTRA) (64-bit, F + ATT_EXTRA fraction bits).
    At the end: inv = recip(l); out_i = sat32(round(O_i * inv.mant / 2^(30 - inv.exp + ATT_EXTRA))).
    """
    h, t, hs = q.shape[0], keys.shape[0], q.shape[1]
    scores = attention_scores(q, keys, isq, frac)                       # [H, T]
    starts, alpha, p = online_softmax_runs(scores, frac)
    terms = rshr(p[..., None] * values.transpose(1, 0, 2), Q30 - ATT_EXTRA).reshape(h * t, hs)
    run_l = np.add.reduceat(p.ravel(), starts).tolist()
    run_o = np.add.reduceat(terms, starts, axis=0).tolist()
    half = 1 << (Q30 - 1)
    l, o = [0] * h, [None] * h
    for head, a, pl, po in zip((starts // I64(t)).tolist(), alpha.tolist(), run_l, run_o):
        if o[head] is None:                                             # the head's first run
            l[head], o[head] = pl, po
        else:                                                           # Python ints: 64 x 31 products
            l[head] = ((l[head] * a + half) >> Q30) + pl
            o[head] = [((oi * a + half) >> Q30) + ti for oi, ti in zip(o[head], po)]
    mant, exp = recip(np.asarray(l, I64), Q30)
    out = np.empty((h, hs), I64)
    for head in range(h):
        out[head] = sat(mul_rshr_wide(np.asarray(o[head], I64), int(mant[head]), Q30 - int(exp[head]) + ATT_EXTRA))
    return out


def attention_head(q: np.ndarray, keys: np.ndarray, values: np.ndarray, isq: int,
                   frac: int = ACT_FRAC) -> np.ndarray:
    """One query head: q [hs], keys/values [T, hs] -> [hs] (see `attention`)."""
    return attention(q[None], keys[:, None], values[:, None], isq, frac)[0]


def swiglu(h1: np.ndarray, h3: np.ndarray, frac: int = ACT_FRAC) -> np.ndarray:
    """silu(h1) * h3.  In/out: Q.F.  out = sat32(rshr(silu(h1) * h3, F))."""
    return sat(rshr(silu(h1, frac) * h3, frac))


def residual(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y, saturated to 32 bits."""
    return sat(x + y)
