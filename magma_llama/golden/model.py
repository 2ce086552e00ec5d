"""The golden decoder: the stages of `stages` wired as the hardware sequences them.

Per token: embedding fetch; per layer S1 RMSNorm + Q/K/V + RoPE + KV write,
S2/S3 attention per query head (online softmax over the KV cache), S4 Wo +
residual, S5 RMSNorm + SwiGLU FFN + residual; then the final RMSNorm and the
classifier.  Everything at run time is an integer; `taps` keeps, per token, the
activations after attention and after the FFN of each layer and the logits
(Q.F integers), named as the float reference names its taps.
"""

from __future__ import annotations

import numpy as np

from magma_llama.golden import stages as S
from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACT_FRAC, I64
from magma_llama.numerics.image import WeightImage


class GoldenTransformer:
    def __init__(self, image: WeightImage, frac: int = ACT_FRAC):
        self.cfg = c = image.config
        self.frac = frac
        self.image = image
        mv = lambda name: S.MatVecWeights.from_quant(image.matrix(name))  # noqa: E731
        gain = lambda name: S.GainVector.from_quant(image.matrix(name))  # noqa: E731
        self.layers = []
        for l in range(c.n_layers):
            p = f"layer{l}."
            self.layers.append({n: mv(p + n) for n in ("wq", "wk", "wv", "wo", "w1", "w3", "w2")}
                               | {"rms_att": gain(p + "rms_att"), "rms_ffn": gain(p + "rms_ffn")})
        self.rms_final = gain("rms_final")
        self.wcls = mv("wcls")
        self.emb = image.matrix(image.embedding_section)
        self.norm = S.RmsNormConsts.make(c.dim, frac)
        self.cos, self.sin = T.rope_tables(c.head_size, c.seq_len)
        self.isq = T.inv_sqrt_q30(c.head_size)
        self.key_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), I64)
        self.value_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), I64)
        self.taps: dict[str, np.ndarray] = {}

    def forward(self, token: int, pos: int) -> np.ndarray:
        """Logits (Q.F integers in the int32 range) for `token` at `pos`."""
        c, f = self.cfg, self.frac
        hs = c.head_size
        x = S.embed(self.emb, token, f)
        for l, w in enumerate(self.layers):
            # S1: pre-norm, Q/K/V, RoPE, KV write
            xb = S.rmsnorm(x, w["rms_att"], self.norm)
            q = S.rope(S.matvec(w["wq"], xb), pos, hs, self.cos, self.sin)
            k = S.rope(S.matvec(w["wk"], xb), pos, hs, self.cos, self.sin)
            v = S.matvec(w["wv"], xb)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            # S2/S3: attention per query head; GQA: head h reads kv head h // kv_mul
            kv_of_head = np.arange(c.n_heads) // c.kv_mul
            keys = self.key_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)[:, kv_of_head]
            values = self.value_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)[:, kv_of_head]
            att = S.attention(q.reshape(c.n_heads, hs), keys, values, self.isq, f).reshape(c.dim)
            # S4: output projection and residual
            x = S.residual(x, S.matvec(w["wo"], att))
            self.taps[f"layer{l}.attn"] = x
            # S5: FFN
            xb = S.rmsnorm(x, w["rms_ffn"], self.norm)
            h = S.swiglu(S.matvec(w["w1"], xb), S.matvec(w["w3"], xb), f)
            x = S.residual(x, S.matvec(w["w2"], h))
            self.taps[f"layer{l}.ffn"] = x
        logits = S.matvec(self.wcls, S.rmsnorm(x, self.rms_final, self.norm))
        self.taps["logits"] = logits
        return logits
