"""The golden decoder: the stages of `stages` wired as the hardware sequences them.

Per token: embedding fetch; per layer S1 RMSNorm + Q/K/V + RoPE + KV write,
S2/S3 attention per query head (online softmax over the KV cache), S4 Wo +
residual, S5 RMSNorm + SwiGLU FFN + residual; then the final RMSNorm and the
classifier.  Everything at run time is an integer; `taps` keeps, per token, the
activations after attention and after the FFN of each layer and the logits
(Q.F integers), named as the float reference names its taps.  With
`detailed_taps=True` it also keeps every stage's output, for per-stage hardware
tests: embed, and per layer xb_att (RMSNorm), q and k (after RoPE), v, att (the
heads' outputs, before Wo), xb_ffn, h1, h3, swiglu; and xb_final.
"""

from __future__ import annotations

import numpy as np

from magma_llama.golden import stages as S
from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACT_FRAC, I64
from magma_llama.numerics.image import WeightImage


class GoldenTransformer:
    def __init__(self, image: WeightImage, frac: int = ACT_FRAC, detailed_taps: bool = False):
        self.cfg = c = image.config
        self.detailed = detailed_taps
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

    def _tap(self, name: str, value: np.ndarray) -> np.ndarray:
        if self.detailed:
            self.taps[name] = value
        return value

    def forward(self, token: int, pos: int) -> np.ndarray:
        """Logits (Q.F integers in the int32 range) for `token` at `pos`."""
        c, f = self.cfg, self.frac
        hs = c.head_size
        t = self._tap
        x = t("embed", S.embed(self.emb, token, f))
        for l, w in enumerate(self.layers):
            p = f"layer{l}."
            # S1: pre-norm, Q/K/V, RoPE, KV write
            xb = t(p + "xb_att", S.rmsnorm(x, w["rms_att"], self.norm))
            q = t(p + "q", S.rope(S.matvec(w["wq"], xb), pos, hs, self.cos, self.sin))
            k = t(p + "k", S.rope(S.matvec(w["wk"], xb), pos, hs, self.cos, self.sin))
            v = t(p + "v", S.matvec(w["wv"], xb))
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            # S2/S3: attention per query head; GQA: head h reads kv head h // kv_mul
            kv_of_head = np.arange(c.n_heads) // c.kv_mul
            keys = self.key_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)[:, kv_of_head]
            values = self.value_cache[l, : pos + 1].reshape(pos + 1, c.n_kv_heads, hs)[:, kv_of_head]
            att = t(p + "att", S.attention(q.reshape(c.n_heads, hs), keys, values, self.isq, f).reshape(c.dim))
            # S4: output projection and residual
            x = S.residual(x, S.matvec(w["wo"], att))
            self.taps[f"layer{l}.attn"] = x
            # S5: FFN
            xb = t(p + "xb_ffn", S.rmsnorm(x, w["rms_ffn"], self.norm))
            h1, h3 = t(p + "h1", S.matvec(w["w1"], xb)), t(p + "h3", S.matvec(w["w3"], xb))
            h = t(p + "swiglu", S.swiglu(h1, h3, f))
            x = S.residual(x, S.matvec(w["w2"], h))
            self.taps[f"layer{l}.ffn"] = x
        logits = S.matvec(self.wcls, t("xb_final", S.rmsnorm(x, self.rms_final, self.norm)))
        self.taps["logits"] = logits
        return logits
