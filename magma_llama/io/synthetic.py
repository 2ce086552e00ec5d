"""Deterministic synthetic llama2.c checkpoints and tokenizers of any shape.

Tests use them for shapes no real checkpoint has (GQA with odd group sizes, an
unshared classifier, a hidden dim that is not a multiple of the lane count, a
tiny vocabulary).  The same seed always gives the same bytes.
"""

from __future__ import annotations

import os

import numpy as np

from magma_llama.io.checkpoint import Config, Weights, write_checkpoint
from magma_llama.io.tokenizer import write_tokenizer


def synthetic_weights(cfg: Config, seed: int = 0) -> Weights:
    """Random weights scaled like a trained model (rows of unit-ish gain)."""
    cfg.validate()
    rng = np.random.default_rng(seed)
    L, d, h, kv, v = cfg.n_layers, cfg.dim, cfg.hidden_dim, cfg.kv_dim, cfg.vocab_size

    def mat(*shape):
        fan_in = shape[-1]
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    def gain(*shape):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)

    emb = rng.standard_normal((v, d)).astype(np.float32)
    w = Weights(
        token_embedding=emb,
        rms_att=gain(L, d),
        wq=mat(L, d, d),
        wk=mat(L, kv, d),
        wv=mat(L, kv, d),
        wo=mat(L, d, d),
        rms_ffn=gain(L, d),
        w1=mat(L, h, d),
        w2=mat(L, d, h),
        w3=mat(L, h, d),
        rms_final=gain(d),
        wcls=emb if cfg.shared_classifier else mat(v, d),
    )
    return w


def synthetic_pieces(vocab_size: int) -> list[bytes]:
    """Vocabulary like sentencepiece's: specials, byte pieces when they fit, then words."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    if vocab_size >= 3 + 256:
        pieces += [b"<0x%02X>" % i for i in range(256)]
    alphabet = [bytes([c]) for c in b" etaoinshrdlucmfwypvbgkjqxz.,!?'\n"]
    words = [b" " + c for c in alphabet[1:27]] + [a + b for a in alphabet[1:8] for b in alphabet[1:27]]
    for p in alphabet + words:
        if len(pieces) >= vocab_size:
            break
        if p not in pieces:
            pieces.append(p)
    i = 0
    while len(pieces) < vocab_size:
        pieces.append(b" w%d" % i)
        i += 1
    return pieces[:vocab_size]


def write_synthetic(folder: str, cfg: Config, seed: int = 0, name: str = "synthetic") -> tuple[str, str]:
    """Write `<name>.bin` and `<name>_tok.bin` into folder; return their paths."""
    os.makedirs(folder, exist_ok=True)
    model = os.path.join(folder, f"{name}.bin")
    tok = os.path.join(folder, f"{name}_tok.bin")
    write_checkpoint(model, cfg, synthetic_weights(cfg, seed))
    pieces = synthetic_pieces(cfg.vocab_size)
    scores = [0.0 if i < 3 else -float(i) for i in range(len(pieces))]
    write_tokenizer(tok, pieces, scores)
    return model, tok


# Shapes used across the tests and benchmarks, named once.
SHAPES = {
    "tiny": Config(dim=16, hidden_dim=40, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32, seq_len=32),
    "gqa_unshared": Config(dim=48, hidden_dim=100, n_layers=2, n_heads=6, n_kv_heads=2, vocab_size=300,
                           seq_len=64, shared_classifier=False),
    "stories260K": Config(dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=512,
                          seq_len=512),
    "stories15M": Config(dim=288, hidden_dim=768, n_layers=6, n_heads=6, n_kv_heads=6, vocab_size=32000,
                         seq_len=256),
}
