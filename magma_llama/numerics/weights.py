"""Weight formats and the quantizer (float checkpoint -> mantissas + exponents).

A weight format `wN` stores each weight as a signed N-bit mantissa m (symmetric
range, |m| <= 2^(N-1) - 1) and each group of G consecutive weights along a row
(the last group of a row may be shorter) shares one power-of-two exponent e:
w = m * 2^e.  Exponents are signed 8-bit two's complement bytes restricted to
[EXP_MIN, EXP_MAX].  RMSNorm gains use the same scheme with GAIN_BITS mantissas,
whatever the matrix format.

The matvec engine multiplies m by an activation x (Q.F), shifts the product by
e + MATVEC_EXTRA (left, or right rounding half up) into a 64-bit accumulator
with F + MATVEC_EXTRA fraction bits, and after the row rounds it to Q.F and
saturates.  Each term is rounded on its own, so the sum is the same in any
order and for any number of lanes.  `check_accumulator_bound` proves the
accumulator cannot overflow for any int32 input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magma_llama.numerics.fixed import I64, MATVEC_EXTRA

WEIGHT_FORMATS = {"w8": 8, "w16": 16, "w24": 24}
DEFAULT_FORMAT = "w16"
DEFAULT_GROUP = 32
GAIN_BITS = 24
EXP_BITS = 8
EXP_MIN = -64
EXP_MAX = 15
# exponent choice: "fit" = smallest e with no clipping; "mse" = also try e - 1 (the largest
# weights then saturate at +-(2^(N-1) - 1)) and keep whichever gives the smaller squared
# error for the group.  "mse" is the default: it costs nothing in hardware and lifts w8
# from 61 to 71 leading tokens on stories260K (docs/numerics.md).
EXPONENT_RULES = ("fit", "mse")
DEFAULT_RULE = "mse"
QUANTIZER_VERSION = 1    # bump when the quantizer's output changes: cached images are keyed on it


MAX_DIM = 1 << 16        # sums of squares and q.k dots: 2^46 per term, 2^16 terms in 64 bits
MAX_SEQ_LEN = 1 << 19    # the attention V accumulator: |O| <= seq_len * 2^43 < 2^62


def check_config_limits(cfg) -> None:
    """Refuse a model whose shape the hardware's accumulators are not sized for."""
    from magma_llama.errors import CheckpointHeaderError
    for name, value, limit in (("dim", cfg.dim, MAX_DIM), ("hidden_dim", cfg.hidden_dim, MAX_DIM),
                               ("seq_len", cfg.seq_len, MAX_SEQ_LEN)):
        if value > limit:
            raise CheckpointHeaderError(f"{name} = {value} is above the hardware numerics' limit {limit}")


@dataclass(frozen=True)
class WeightFormat:
    bits: int
    group: int = DEFAULT_GROUP
    rule: str = DEFAULT_RULE

    @property
    def name(self) -> str:
        return f"w{self.bits}"

    @property
    def mant_max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def mant_bytes(self) -> int:
        return self.bits // 8


def weight_format(name: str, group: int = DEFAULT_GROUP, rule: str = DEFAULT_RULE) -> WeightFormat:
    from magma_llama.errors import UsageError
    if name not in WEIGHT_FORMATS:
        raise UsageError(f"weight format must be one of {', '.join(WEIGHT_FORMATS)}, got {name!r}")
    if not 1 <= group <= 4096:
        raise UsageError(f"group size must be in [1, 4096], got {group}")
    if rule not in EXPONENT_RULES:
        raise UsageError(f"exponent rule must be one of {', '.join(EXPONENT_RULES)}, got {rule!r}")
    return WeightFormat(WEIGHT_FORMATS[name], group, rule)


@dataclass
class QuantMatrix:
    """One quantized matrix [rows, cols]: mant int64 [rows, cols], exp int64 [rows, ngroups]."""

    mant: np.ndarray
    exp: np.ndarray
    group: int

    @property
    def rows(self) -> int:
        return self.mant.shape[0]

    @property
    def cols(self) -> int:
        return self.mant.shape[1]

    def exp_per_weight(self) -> np.ndarray:
        return np.repeat(self.exp, self.group, axis=1)[:, : self.cols]

    def dequantize(self) -> np.ndarray:
        """float64 values (for reports and tests, never the datapath)."""
        return self.mant.astype(np.float64) * np.exp2(self.exp_per_weight().astype(np.float64))


def _padded_groups(w: np.ndarray, group: int) -> np.ndarray:
    rows, cols = w.shape
    ng = -(-cols // group)
    pad = np.zeros((rows, ng * group), np.float64)
    pad[:, :cols] = w
    return pad.reshape(rows, ng, group)


def _round_mant(w: np.ndarray, e: np.ndarray, mmax: int) -> np.ndarray:
    # w / 2^e is exact in float64 for float32 w; floor(v + 0.5) is round half up, exactly
    v = np.floor(np.ldexp(w, -e[..., None]) + 0.5)
    return np.clip(v, -mmax, mmax)


def quantize_matrix(w: np.ndarray, bits: int, group: int, rule: str = DEFAULT_RULE) -> QuantMatrix:
    """Quantize a float32 matrix [rows, cols] to `bits`-bit mantissas, one exponent per group."""
    w = np.asarray(w, np.float64)
    if w.ndim == 1:
        w = w[None, :]
    rows, cols = w.shape
    g = _padded_groups(w, group)
    mmax = (1 << (bits - 1)) - 1
    amax = np.abs(g).max(axis=2)
    # smallest e with amax / 2^e <= mmax (frexp is exact), then bump where rounding overflows
    _, ex = np.frexp(np.where(amax > 0, amax / mmax, 1.0))
    e = ex.astype(I64)
    e = np.where(np.floor(np.ldexp(amax, -e) + 0.5) > mmax, e + 1, e)
    e = np.where(np.floor(np.ldexp(amax, -(e - 1)) + 0.5) <= mmax, e - 1, e)
    e = np.where(amax > 0, e, EXP_MIN)
    e = np.clip(e, EXP_MIN, EXP_MAX)
    m = _round_mant(g, e, mmax)
    if rule == "mse":
        e2 = np.clip(e - 1, EXP_MIN, EXP_MAX)
        m2 = _round_mant(g, e2, mmax)
        err1 = ((np.ldexp(m, e[..., None]) - g) ** 2).sum(axis=2)
        err2 = ((np.ldexp(m2, e2[..., None]) - g) ** 2).sum(axis=2)
        better = err2 < err1
        e = np.where(better, e2, e)
        m = np.where(better[..., None], m2, m)
    mant = m.reshape(rows, -1)[:, :cols].astype(I64)
    return QuantMatrix(mant, e.astype(I64), group)


def check_accumulator_bound(q: QuantMatrix) -> int | None:
    """The first row whose matvec could overflow the 64-bit accumulator, or None.

    Worst case input: every |x| = 2^31.  Each term is at most |m| * 2^31 * 2^(e + EXTRA)
    plus a rounding half, so a row is safe when sum |m| 2^(e + EXTRA) < 2^30 (a factor
    of two below 2^63 / 2^31 leaves room for the halves).  Host-side check, in float64.
    """
    ng = q.exp.shape[1]
    pad = np.zeros((q.rows, ng * q.group), np.float64)
    pad[:, : q.cols] = np.abs(q.mant)
    gsum = pad.reshape(q.rows, ng, q.group).sum(axis=2)
    row = (gsum * np.exp2((q.exp + MATVEC_EXTRA).astype(np.float64))).sum(axis=1)
    bad = np.flatnonzero(row >= 2.0 ** 30)
    return int(bad[0]) if bad.size else None


def check_gain_bound(q: QuantMatrix) -> int | None:
    """The first gain whose product with an int32 activation could overflow 64 bits, or None.

    RMSNorm forms u * m (32 x GAIN_BITS bits) and shifts it by e: safe when |m| * 2^e < 2^31.
    """
    big = np.abs(q.mant) >= np.left_shift(I64(1), np.clip(31 - q.exp_per_weight(), 0, 62))
    bad = np.flatnonzero(big.ravel())
    return int(bad[0]) if bad.size else None


def weight_beats(q: QuantMatrix, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """The matvec engine's weight stream: (mant, exp), each [rows, beats, lanes].

    Row by row; a beat carries `lanes` consecutive mantissas of one row and, beside each,
    the exponent of its group (entry j // G of the row's exponents).  A row whose length
    is not a multiple of `lanes` ends with a beat padded with zero mantissas (their
    exponent is EXP_MIN), which add nothing to the accumulator.
    """
    beats = -(-q.cols // lanes)
    mant = np.zeros((q.rows, beats * lanes), I64)
    exp = np.full((q.rows, beats * lanes), EXP_MIN, I64)
    mant[:, : q.cols] = q.mant
    exp[:, : q.cols] = q.exp_per_weight()
    return mant.reshape(q.rows, beats, lanes), exp.reshape(q.rows, beats, lanes)
