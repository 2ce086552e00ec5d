"""llama2.c checkpoint files (the legacy float32 format that run.c reads).

Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
vocab_size, seq_len), then float32 tensors in run.c's order.  A negative
vocab_size means the classifier is not shared with the embedding and follows the
(unused) RoPE tables.  Matrices are stored row-major as [out, in], exactly as
run.c's `matmul(xout, x, w, n, d)` reads them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, fields

import numpy as np

from magma_llama.errors import (
    CheckpointError,
    CheckpointHeaderError,
    CheckpointSizeError,
    NonFiniteWeightError,
)

HEADER = struct.Struct("<7i")
MAGIC_V1 = 0x616B3432  # "ak42": llama2.c's newer export versions, not run.c's format


@dataclass(frozen=True)
class Config:
    """The model shape, as the checkpoint header gives it."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool = True

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.head_size * self.n_kv_heads

    @property
    def kv_mul(self) -> int:
        """Query heads per KV head (GQA group size)."""
        return self.n_heads // self.n_kv_heads

    def header_ints(self) -> tuple[int, ...]:
        vocab = self.vocab_size if self.shared_classifier else -self.vocab_size
        return (self.dim, self.hidden_dim, self.n_layers, self.n_heads,
                self.n_kv_heads, vocab, self.seq_len)

    def validate(self) -> "Config":
        names = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
        for name in names:
            if getattr(self, name) <= 0:
                raise CheckpointHeaderError(f"header: {name} = {getattr(self, name)} must be positive")
        if self.dim % self.n_heads:
            raise CheckpointHeaderError(f"header: dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise CheckpointHeaderError(
                f"header: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_size % 2:
            raise CheckpointHeaderError(f"header: head size {self.head_size} is odd (RoPE rotates pairs)")
        return self

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every tensor in file order, with its shape; `None` names skip the RoPE tables."""
        L, d, h, kv = self.n_layers, self.dim, self.hidden_dim, self.kv_dim
        shapes = [
            ("token_embedding", (self.vocab_size, d)),
            ("rms_att", (L, d)),
            ("wq", (L, d, d)),
            ("wk", (L, kv, d)),
            ("wv", (L, kv, d)),
            ("wo", (L, d, d)),
            ("rms_ffn", (L, d)),
            ("w1", (L, h, d)),
            ("w2", (L, d, h)),
            ("w3", (L, h, d)),
            ("rms_final", (d,)),
            ("freq_cis", (self.seq_len, self.head_size)),  # real and imag halves, unused
        ]
        if not self.shared_classifier:
            shapes.append(("wcls", (self.vocab_size, d)))
        return shapes

    def file_size(self) -> int:
        return HEADER.size + 4 * sum(int(np.prod(s)) for _, s in self.tensor_shapes())


@dataclass
class Weights:
    """All tensors of a checkpoint as float32 arrays, [out, in] for matrices."""

    token_embedding: np.ndarray
    rms_att: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    rms_ffn: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    rms_final: np.ndarray
    wcls: np.ndarray  # the embedding itself when the classifier is shared

    def tensors(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Checkpoint:
    config: Config
    weights: Weights
    path: str = ""


def read_header(path: str) -> Config:
    """Read and validate the header only (cheap; used before long work starts)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER.size)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    if len(raw) < HEADER.size:
        raise CheckpointSizeError(f"{path}: {len(raw)} bytes, shorter than the 28-byte header")
    ints = HEADER.unpack(raw)
    if ints[0] == MAGIC_V1:
        raise CheckpointHeaderError(
            f"{path}: llama2.c export version 1/2 (magic 'ak42') is not supported; "
            "export with --version 0 (the float32 format run.c reads)")
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = ints
    cfg = Config(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len, shared_classifier=vocab > 0)
    if vocab == 0:
        raise CheckpointHeaderError("header: vocab_size = 0 must be non-zero")
    return cfg.validate()


def read_checkpoint(path: str) -> Checkpoint:
    """Read a llama2.c checkpoint, checking its size and that every weight is finite (and, for a
    file named as a published one, that it is that file: io/catalog.py)."""
    from magma_llama.io.catalog import verify
    cfg = read_header(path)
    verify(path)
    size = os.path.getsize(path)
    expected = cfg.file_size()
    if size < expected:
        raise CheckpointSizeError(
            f"{path}: truncated: {size} bytes, the header implies {expected}")
    if size > expected:
        raise CheckpointSizeError(
            f"{path}: {size - expected} bytes longer than the header implies ({expected}); "
            "wrong header or not a llama2.c float32 checkpoint")
    data = np.fromfile(path, dtype="<f4", offset=HEADER.size).astype(np.float32, copy=False)
    tensors, at = {}, 0
    for name, shape in cfg.tensor_shapes():
        n = int(np.prod(shape))
        tensors[name] = data[at:at + n].reshape(shape)
        at += n
    bad = ~np.isfinite(data)
    if bad.any():
        first = int(np.argmax(bad))
        where = _tensor_at(cfg, first)
        raise NonFiniteWeightError(
            f"{path}: {int(bad.sum())} weight(s) are NaN or Inf (first in {where})")
    tensors.pop("freq_cis")
    if cfg.shared_classifier:
        tensors["wcls"] = tensors["token_embedding"]
    return Checkpoint(cfg, Weights(**tensors), path)


def _tensor_at(cfg: Config, index: int) -> str:
    at = 0
    for name, shape in cfg.tensor_shapes():
        n = int(np.prod(shape))
        if index < at + n:
            return name
        at += n
    return "?"


def write_checkpoint(path: str, cfg: Config, weights: Weights) -> None:
    """Write a checkpoint that run.c (and `read_checkpoint`) reads back bit for bit."""
    cfg.validate()
    with open(path, "wb") as f:
        f.write(HEADER.pack(*cfg.header_ints()))
        for name, shape in cfg.tensor_shapes():
            if name == "freq_cis":
                arr = _rope_tables(cfg)
            else:
                arr = getattr(weights, name)
            arr = np.asarray(arr, dtype="<f4")
            if arr.shape != shape:
                raise ValueError(f"{name}: shape {arr.shape}, config wants {shape}")
            f.write(arr.tobytes())


def _rope_tables(cfg: Config) -> np.ndarray:
    """The (unused) freq_cis_real/imag tables, written as llama2.c's exporter does."""
    hs = cfg.head_size
    freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2, dtype=np.float64) / hs))
    angles = np.outer(np.arange(cfg.seq_len), freqs)
    return np.concatenate([np.cos(angles).ravel(), np.sin(angles).ravel()]).astype(np.float32).reshape(
        cfg.seq_len, hs)
