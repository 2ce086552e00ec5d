"""The hardware sampler: argmax, or temperature sampling with an xorshift32 PRNG.

Top-p is not implemented in hardware (it needs a sort of the vocabulary); the
golden command refuses a top-p in (0, 1) with temperature > 0.

Temperature sampling, all integers:
1. the host gives 1/T as unsigned Q15.16 (`inv_temperature_q16`, 31 bits);
2. z_i = sat32(rshr(logit_i * invT, 16)) (Q.F); M = max z (a first pass);
3. p_i = exp_neg(z_i - M) (Q1.30), total = sum p_i (64-bit);
4. r = next xorshift32 word; coin = (r * total) >> 32, so coin is uniform-ish in [0, total);
5. the token is the first i whose running sum of p exceeds coin.
No division and no normalisation: the cdf is compared against a coin scaled to its total.
"""

from __future__ import annotations

import math

import numpy as np

from magma_llama.numerics.fixed import ACT_FRAC, I64, sat, rshr
from magma_llama.numerics.functions import argmax, exp_neg

INV_T_FRAC = 16
INV_T_MAX = (1 << 31) - 1
PRNG_BITS = 32
PRNG_ZERO_SEED = 0x9E3779B9      # xorshift32 cannot leave state 0; this replaces it


def inv_temperature_q16(t: float) -> int:
    """Host side: 1/T as unsigned Q15.16 (round half up), in [1, 2^31 - 1]."""
    if not t > 0:
        raise ValueError("temperature must be > 0 for sampling")
    v = math.floor((1 << INV_T_FRAC) / t + 0.5) if t > 2.0 ** -15 else INV_T_MAX
    return min(max(v, 1), INV_T_MAX)


def prng_seed(seed: int) -> int:
    """The 32-bit PRNG state from a 64-bit seed: low xor high word; 0 becomes PRNG_ZERO_SEED."""
    s = (seed ^ (seed >> 32)) & 0xFFFFFFFF
    return s or PRNG_ZERO_SEED


def xorshift32(state: int) -> int:
    """Marsaglia's xorshift32 with shifts (13, 17, 5); the new state is also the output word."""
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


def sample_temperature(logits: np.ndarray, inv_t: int, r: int, frac: int = ACT_FRAC) -> int:
    """The token chosen from Q.F logits with 1/T (Q15.16) and one 32-bit random word r."""
    z = sat(rshr(np.asarray(logits, I64) * I64(inv_t), INV_T_FRAC))
    p = exp_neg(z - z.max(), frac)
    cdf = np.cumsum(p)
    total = int(cdf[-1])
    coin = (r * total) >> PRNG_BITS
    return int(np.flatnonzero(cdf > coin)[0])


class HardwareSampler:
    """Greedy when temperature == 0, else temperature sampling with xorshift32."""

    def __init__(self, temperature: float, seed: int, frac: int = ACT_FRAC):
        self.greedy = temperature == 0
        self.inv_t = 0 if self.greedy else inv_temperature_q16(temperature)
        self.state = prng_seed(seed)
        self.frac = frac

    def sample(self, logits: np.ndarray) -> int:
        if self.greedy:
            return argmax(logits)
        self.state = xorshift32(self.state)
        return sample_temperature(logits, self.inv_t, self.state, self.frac)
