"""Checkpoint reader/writer: exact round trips for every shape, a typed error for every defect."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from magma_llama.errors import (CheckpointError, CheckpointHeaderError, CheckpointSizeError,
                                NonFiniteWeightError)
from magma_llama.io.checkpoint import HEADER, Config, read_checkpoint, read_header, write_checkpoint
from magma_llama.io.synthetic import SHAPES, synthetic_weights
from tests.conftest import assert_cli_error, run_cli

ROUND_TRIP_SHAPES = {
    **{k: SHAPES[k] for k in ("tiny", "gqa_unshared")},
    "mqa_hidden_not_mult_8": Config(dim=32, hidden_dim=37, n_layers=1, n_heads=4, n_kv_heads=1,
                                    vocab_size=7, seq_len=9),
    "one_head": Config(dim=8, hidden_dim=8, n_layers=3, n_heads=1, n_kv_heads=1, vocab_size=3, seq_len=4,
                       shared_classifier=False),
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_SHAPES))
def test_round_trip_is_exact(tmp_path, name):
    cfg = ROUND_TRIP_SHAPES[name]
    w = synthetic_weights(cfg, seed=3)
    path = tmp_path / "m.bin"
    write_checkpoint(str(path), cfg, w)
    assert path.stat().st_size == cfg.file_size()
    ck = read_checkpoint(str(path))
    assert ck.config == cfg
    for key, arr in w.tensors().items():
        got = getattr(ck.weights, key)
        assert got.dtype == np.float32 and got.shape == arr.shape, key
        assert np.array_equal(got.view(np.uint32), arr.view(np.uint32)), key
    # shared classifier is the embedding itself; unshared is its own tensor
    assert (ck.weights.wcls is ck.weights.token_embedding) == cfg.shared_classifier


def test_synthetic_is_deterministic(tmp_path):
    cfg = SHAPES["tiny"]
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    write_checkpoint(str(a), cfg, synthetic_weights(cfg, seed=5))
    write_checkpoint(str(b), cfg, synthetic_weights(cfg, seed=5))
    assert a.read_bytes() == b.read_bytes()
    write_checkpoint(str(b), cfg, synthetic_weights(cfg, seed=6))
    assert a.read_bytes() != b.read_bytes()


def test_real_header(stories260k):
    cfg = read_header(str(stories260k[0]))
    assert (cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size,
            cfg.seq_len) == (64, 172, 5, 8, 4, 512, 512)
    assert cfg.shared_classifier and cfg.kv_mul == 2 and cfg.head_size == 8


# ---------------------------------------------------------------------------------------------
def _write(tmp_path, cfg: Config, mutate=None, header=None) -> str:
    path = tmp_path / "bad.bin"
    write_checkpoint(str(path), cfg, synthetic_weights(cfg))
    data = bytearray(path.read_bytes())
    if header is not None:
        data[:HEADER.size] = HEADER.pack(*header)
    if mutate:
        data = mutate(data)
    path.write_bytes(bytes(data))
    return str(path)


TINY = SHAPES["tiny"]
H = TINY.header_ints()


def _hdr(**kw):
    names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
    vals = dict(zip(names, H))
    vals.update(kw)
    return tuple(vals[n] for n in names)


def _poke_float(value):
    def mutate(data):
        off = HEADER.size + 4 * 5  # a weight inside the embedding
        data[off:off + 4] = struct.pack("<f", value)
        return data
    return mutate


BAD = {
    "truncated": (CheckpointSizeError, "truncated", dict(mutate=lambda d: d[:-4])),
    "longer": (CheckpointSizeError, "longer", dict(mutate=lambda d: d + b"\0" * 8)),
    "header_only_part": (CheckpointSizeError, "header", dict(mutate=lambda d: d[:10])),
    "dim_zero": (CheckpointHeaderError, "dim", dict(header=_hdr(dim=0))),
    "negative_layers": (CheckpointHeaderError, "n_layers", dict(header=_hdr(n_layers=-2))),
    "vocab_zero": (CheckpointHeaderError, "vocab_size", dict(header=_hdr(vocab_size=0))),
    "dim_not_mult_heads": (CheckpointHeaderError, "multiple of n_heads", dict(header=_hdr(n_heads=3))),
    "heads_not_mult_kv": (CheckpointHeaderError, "n_kv_heads", dict(header=_hdr(n_kv_heads=3))),
    "odd_head_size": (CheckpointHeaderError, "odd", dict(header=_hdr(dim=20, n_heads=4))),
    "nan_weight": (NonFiniteWeightError, "NaN", dict(mutate=_poke_float(float("nan")))),
    "inf_weight": (NonFiniteWeightError, "Inf", dict(mutate=_poke_float(float("inf")))),
    "export_v1": (CheckpointHeaderError, "ak42", dict(header=(0x616B3432, 1, 1, 1, 1, 1, 1))),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_checkpoint_raises_typed_error(tmp_path, case):
    err, fragment, how = BAD[case]
    path = _write(tmp_path, TINY, **how)
    with pytest.raises(err) as info:
        read_checkpoint(path)
    assert fragment in str(info.value)


@pytest.mark.parametrize("case", ["truncated", "odd_head_size", "nan_weight"])
def test_bad_checkpoint_cli_error(tmp_path, synthetic, case):
    err, fragment, how = BAD[case]
    path = _write(tmp_path, TINY, **how)
    _, tok = synthetic("tiny")
    assert_cli_error(run_cli("ref", "--model", path, "--tokenizer", tok, "-n", "2"), fragment)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(str(tmp_path / "nope.bin"))


def test_header_ints_round_trip():
    for cfg in ROUND_TRIP_SHAPES.values():
        vocab = cfg.header_ints()[5]
        assert (vocab > 0) == cfg.shared_classifier
        assert dataclasses.replace(cfg).validate() == cfg
