"""run.c's sampler: argmax, temperature + multinomial, top-p, and its xorshift RNG.

The same seed gives the same choices as run.c because every float step (the
division by temperature, the softmax, the running cdf) is done in float32 in
run.c's order, and the coin comes from the same xorshift64* generator.
"""

from __future__ import annotations

import numpy as np

from magma_llama.reference.forward import F32, softmax

MASK64 = (1 << 64) - 1


class XorShiftRng:
    """run.c's random_u32 / random_f32 (xorshift64*)."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def u32(self) -> int:
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & MASK64
        s ^= s >> 27
        self.state = s
        return ((s * 0x2545F4914F6CDD1D) & MASK64) >> 32

    def f32(self) -> np.float32:
        return F32(self.u32() >> 8) / F32(16777216.0)


def argmax(x: np.ndarray) -> int:
    """First index of the maximum (run.c keeps the first on ties, as np.argmax does)."""
    return int(np.argmax(x))


def sample_mult(probs: np.ndarray, coin: np.float32) -> int:
    cdf = np.add.accumulate(probs, dtype=F32)
    hit = np.nonzero(coin < cdf)[0]
    return int(hit[0]) if hit.size else probs.size - 1  # rounding: run.c returns n - 1


def sample_topp(probs: np.ndarray, topp: float, coin: np.float32) -> int:
    """Nucleus sampling with run.c's cut-off: drop tokens below (1 - topp) / (n - 1) first."""
    n = probs.size
    cutoff = F32((F32(1.0) - F32(topp)) / F32(n - 1))
    idx = np.nonzero(probs >= cutoff)[0]
    # run.c qsorts descending; glibc's qsort is a stable merge sort, so ties keep index order
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    p = probs[idx]
    cum = np.add.accumulate(p, dtype=F32)
    over = np.nonzero(cum > F32(topp))[0]
    last = int(over[0]) if over.size else idx.size - 1
    cumulative = cum[last]
    r = F32(coin * cumulative)
    hit = np.nonzero(r < cum[: last + 1])[0]
    return int(idx[hit[0]]) if hit.size else int(idx[last])


class Sampler:
    def __init__(self, temperature: float, topp: float, seed: int):
        self.temperature = F32(temperature)
        self.topp = float(F32(topp))
        self.rng = XorShiftRng(seed)

    def sample(self, logits: np.ndarray) -> int:
        if self.temperature == 0.0:
            return argmax(logits)
        probs = softmax(logits / self.temperature)
        coin = self.rng.f32()
        if self.topp <= 0 or self.topp >= 1:
            return sample_mult(probs, coin)
        return sample_topp(probs, self.topp, coin)
