"""run.c's forward pass in numpy float32, with run.c's order of every addition.

Float addition is not associative, so "the same maths" is not enough to pick the
same tokens as llama2.c over hundreds of steps.  Every reduction here adds in the
order run.c's loops do (`np.add.accumulate` is a sequential sum), every product
is rounded to float32 before it is added (run.c is compiled without FMA), and
the transcendental functions are libm's own (see libm.py).  The result is the
same logits, bit for bit, as run.c built with `gcc -O3`.
"""

from __future__ import annotations

import numpy as np

from magma_llama.io.checkpoint import Checkpoint
from magma_llama.reference import libm

F32 = np.float32


def seqsum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum along `axis` left to right, as a C for-loop does."""
    return np.add.accumulate(a, axis=axis, dtype=F32).take(-1, axis=axis)


def matmul(w_t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """xout[i] = sum_j w[i, j] * x[j], j ascending.  w_t is w transposed: [in, out]."""
    return seqsum(w_t * x[:, None], axis=0)


def rmsnorm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    ss = seqsum(x * x)
    ss = F32(ss / F32(x.size))
    ss = F32(ss + F32(1e-5))
    ss = F32(F32(1.0) / np.sqrt(ss))
    return weight * (ss * x)


def softmax(x: np.ndarray) -> np.ndarray:
    e = libm.expf(x - x.max())
    return e / seqsum(e)


class FloatTransformer:
    """The decoder with its KV cache; `forward(token, pos)` returns the logits."""

    def __init__(self, ckpt: Checkpoint):
        self.cfg = c = ckpt.config
        w = ckpt.weights
        # transposed copies so that matmul's sequential sum walks contiguous rows
        t = lambda a: np.ascontiguousarray(np.swapaxes(a, -1, -2))  # noqa: E731
        self.emb = w.token_embedding
        self.rms_att, self.rms_ffn, self.rms_final = w.rms_att, w.rms_ffn, w.rms_final
        self.wq, self.wk, self.wv, self.wo = t(w.wq), t(w.wk), t(w.wv), t(w.wo)
        self.w1, self.w2, self.w3 = t(w.w1), t(w.w2), t(w.w3)
        self.wcls = t(w.wcls)
        self.key_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), F32)
        self.value_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), F32)
        # RoPE frequency per pair index i (run.c recomputes it every step; same values)
        head_dim = (np.arange(0, c.dim, 2) % c.head_size).astype(F32)
        self.rope_freq = F32(1.0) / libm.powf(10000.0, head_dim / F32(c.head_size))
        self.taps: dict[str, np.ndarray] = {}

    def rope(self, vec: np.ndarray, pos: int) -> np.ndarray:
        val = F32(pos) * self.rope_freq
        fcr, fci = libm.cosf(val), libm.sinf(val)
        v0, v1 = vec[0::2], vec[1::2]
        out = np.empty_like(vec)
        out[0::2] = v0 * fcr[: v0.size] - v1 * fci[: v0.size]
        out[1::2] = v0 * fci[: v0.size] + v1 * fcr[: v0.size]
        return out

    def forward(self, token: int, pos: int) -> np.ndarray:
        c = self.cfg
        hs, kv_mul = c.head_size, c.kv_mul
        x = self.emb[token].copy()
        for l in range(c.n_layers):
            # attention: rmsnorm, qkv, RoPE, cache
            xb = rmsnorm(x, self.rms_att[l])
            q = self.rope(matmul(self.wq[l], xb), pos)
            k = self.rope(matmul(self.wk[l], xb), pos)
            v = matmul(self.wv[l], xb)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            # multihead attention over positions 0..pos; GQA maps head h to kv head h // kv_mul
            keys = self.key_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)
            values = self.value_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)
            att_out = np.empty(c.dim, F32)
            scale = np.sqrt(F32(hs))
            for h in range(c.n_heads):
                qh = q[h * hs:(h + 1) * hs]
                kh, vh = keys[:, h // kv_mul], values[:, h // kv_mul]
                scores = seqsum(kh * qh, axis=1) / scale
                att = softmax(scores)
                att_out[h * hs:(h + 1) * hs] = seqsum(att[:, None] * vh, axis=0)
            x = x + matmul(self.wo[l], att_out)
            self.taps[f"layer{l}.attn"] = x
            # feed-forward: rmsnorm, SwiGLU, residual
            xb = rmsnorm(x, self.rms_ffn[l])
            h1 = matmul(self.w1[l], xb)
            h3 = matmul(self.w3[l], xb)
            h1 = h1 * (F32(1.0) / (F32(1.0) + libm.expf(-h1)))
            x = x + matmul(self.w2[l], h1 * h3)
            self.taps[f"layer{l}.ffn"] = x
        x = rmsnorm(x, self.rms_final)
        logits = matmul(self.wcls, x)
        self.taps["logits"] = logits
        return logits
