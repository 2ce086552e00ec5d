"""The quantizer and the weight image: round trip, error bounds, corrupt and mismatched images."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import pytest

from magma_llama.errors import CheckpointError
from magma_llama.io.checkpoint import read_checkpoint
from magma_llama.numerics import image as IM
from magma_llama.numerics.weights import (
    EXP_MIN, GAIN_BITS, check_accumulator_bound, quantize_matrix, weight_format,
)
from tests.conftest import assert_cli_error, run_cli


@pytest.fixture(scope="module")
def gqa(synthetic):
    model, tok = synthetic("gqa_unshared", 0)
    return read_checkpoint(model), model, tok


# --- quantizer ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16, 24])
@pytest.mark.parametrize("group", [32, 7])
def test_quantize_matrix_error_bound(bits, group):
    rng = np.random.default_rng(bits + group)
    w = (rng.standard_normal((13, 100)) * np.exp2(rng.integers(-12, 3, (13, 1)))).astype(np.float32)
    w[3, :40] = 0.0                                           # an all-zero group
    q = quantize_matrix(w, bits, group, "fit")
    assert q.exp.shape == (13, -(-100 // group)) and q.mant.dtype == np.int64
    assert np.abs(q.mant).max() <= (1 << (bits - 1)) - 1
    e = q.exp_per_weight()
    # round half up of w / 2^e: the error is at most half a step, and the step is the smallest that fits
    assert (np.abs(q.dequantize() - w) <= np.exp2(e - 1.0)).all()
    amax = np.abs(np.pad(w, ((0, 0), (0, -100 % group)))).reshape(13, -1, group).max(axis=2)
    nz = amax > 0
    assert (amax[nz] / np.exp2(q.exp[nz] - 1.0) > (1 << (bits - 1)) - 1).all()   # e - 1 would not fit
    assert (q.exp[~nz] == EXP_MIN).all() and (q.mant[3, :32] == 0).all()


def test_mse_rule_never_worse():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    fit, mse = quantize_matrix(w, 8, 32, "fit"), quantize_matrix(w, 8, 32, "mse")
    e_fit = ((fit.dequantize() - w) ** 2).reshape(64, 2, 32).sum(axis=2)
    e_mse = ((mse.dequantize() - w) ** 2).reshape(64, 2, 32).sum(axis=2)
    assert (e_mse <= e_fit).all() and (e_mse < e_fit).any()


def test_config_limits():
    from magma_llama.errors import CheckpointHeaderError
    from magma_llama.io.synthetic import SHAPES
    from magma_llama.numerics.weights import check_config_limits
    check_config_limits(SHAPES["stories15M"])
    with pytest.raises(CheckpointHeaderError, match="seq_len"):
        check_config_limits(dataclasses.replace(SHAPES["tiny"], seq_len=1 << 20))
    with pytest.raises(CheckpointHeaderError, match="hidden_dim"):
        check_config_limits(dataclasses.replace(SHAPES["tiny"], hidden_dim=1 << 17))


def test_gain_bound():
    from magma_llama.numerics.weights import check_gain_bound
    assert check_gain_bound(quantize_matrix(np.full((1, 8), 3.0, np.float32), 24, 32)) is None
    assert check_gain_bound(quantize_matrix(np.array([[1.0, 2.0 ** 33]], np.float32), 24, 1)) == 1


def test_accumulator_bound_refuses_huge_weights(gqa):
    ckpt = gqa[0]
    q = quantize_matrix(np.full((2, 64), 3e4, np.float32), 16, 32)
    assert check_accumulator_bound(q) == 0
    ckpt.weights.wq[1, 5, :] = 3e4
    try:
        with pytest.raises(CheckpointError, match="accumulator"):
            IM.quantize_checkpoint(ckpt, weight_format("w16"))
    finally:
        ckpt.weights.wq[1, 5, :] = read_checkpoint(gqa[1]).weights.wq[1, 5, :]


# --- round trip -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["w8", "w16", "w24"])
def test_image_round_trip(gqa, fmt, tmp_path):
    ckpt, model, _ = gqa
    img = IM.quantize_checkpoint(ckpt, weight_format(fmt, 16))
    path = tmp_path / "x.mlwi"
    IM.write_image(img, str(path))
    back = IM.read_image(str(path))
    assert back.config == ckpt.config and back.fmt == img.fmt and back.checkpoint_sha256 == IM.file_sha256(model)
    names = [n for n, *_ in IM.section_layout(ckpt.config)]
    assert list(back.sections) == names and names[-1] == "embedding" and names[:2] == ["layer0.rms_att", "layer0.wq"]
    for n in names:
        a, b = img.sections[n].q, back.sections[n].q
        assert (a.mant == b.mant).all() and (a.exp == b.exp).all(), n
    assert back.sections["layer0.rms_att"].q.mant.max() <= (1 << (GAIN_BITS - 1)) - 1
    assert IM.to_bytes(back) == path.read_bytes()                 # deterministic, byte for byte
    raw = path.read_bytes()
    # sections are 64-byte aligned and the mantissas are little-endian two's complement
    off = struct.unpack_from("<Q", raw, IM.HEADER_SIZE + 64 + 40)[0]  # section 1 = layer0.wq
    assert off % 64 == 0
    nb = int(fmt[1:]) // 8
    m0 = int.from_bytes(raw[off:off + nb], "little", signed=True)
    assert m0 == back.sections["layer0.wq"].q.mant[0, 0]


def _patched(raw: bytes, at: int, new: bytes, fix_crcs: bool = True) -> bytes:
    b = bytearray(raw)
    b[at:at + len(new)] = new
    if fix_crcs:   # a well-formed file with a bad field, not just a damaged one
        nsec = struct.unpack_from("<I", b, 48)[0]
        table = bytes(b[IM.HEADER_SIZE:IM.HEADER_SIZE + nsec * 64])
        poff, psize = struct.unpack_from("<QQ", b, 56)
        struct.pack_into("<I", b, 52, zlib.crc32(table))
        struct.pack_into("<I", b, 72, zlib.crc32(bytes(b[poff:poff + psize])))
        struct.pack_into("<I", b, 124, zlib.crc32(bytes(b[:124])))
    return bytes(b)


@pytest.fixture(scope="module")
def image_bytes(gqa):
    return IM.to_bytes(IM.quantize_checkpoint(gqa[0], weight_format("w16")))


@pytest.mark.parametrize("case, fragment", [
    ("truncated", "shorter"),
    ("magic", "not a weight image"),
    ("version", "version 2"),
    ("header_byte", "header CRC"),
    ("table_byte", "section table CRC"),
    ("payload_byte", "payload CRC"),
    ("short_payload", "truncated or padded"),
    ("bad_bits", "unsupported formats"),
    ("bad_config", "config"),
    ("section_name", "section 0"),
    ("exponent", "exponent outside"),
    ("mantissa_min", "mantissa"),
])
def test_corrupt_image_is_refused(image_bytes, case, fragment):
    raw = image_bytes
    poff = struct.unpack_from("<Q", raw, 56)[0]
    sec1_exp = struct.unpack_from("<Q", raw, IM.HEADER_SIZE + 64 + 48)[0]
    sec1_mant = struct.unpack_from("<Q", raw, IM.HEADER_SIZE + 64 + 40)[0]
    bad = {
        "truncated": raw[:100],
        "magic": b"XXXX" + raw[4:],
        "version": _patched(raw, 4, struct.pack("<H", 2)),
        "header_byte": _patched(raw, 8, b"\x41", fix_crcs=False),
        "table_byte": _patched(raw, IM.HEADER_SIZE + 3, b"\x00", fix_crcs=False),
        "payload_byte": _patched(raw, poff + 5, bytes([raw[poff + 5] ^ 0x10]), fix_crcs=False),
        "short_payload": raw[:-64],
        "bad_bits": _patched(raw, 40, b"\x0c"),
        "bad_config": _patched(raw, 8, struct.pack("<i", 47)),
        "section_name": _patched(raw, IM.HEADER_SIZE, b"layer9.rms_att\0"),
        "exponent": _patched(raw, sec1_exp, struct.pack("<b", 90)),
        "mantissa_min": _patched(raw, sec1_mant, struct.pack("<h", -32768)),
    }[case]
    with pytest.raises(IM.WeightImageCorruptError, match=fragment):
        IM.from_bytes(bad)


# --- CLI: quantize, --image, mismatches -------------------------------------------------------------
def test_cli_quantize_then_golden_image(gqa, synthetic, tmp_path):
    _, model, tok = gqa
    out = tmp_path / "g.mlwi"
    r = run_cli("quantize", "--model", model, "--weights", "w8", "--group", "16", "--out", out, check=True)
    assert str(out) in r.stdout and out.exists()
    ok = run_cli("golden", "--model", model, "--tokenizer", tok, "--weights", "w8", "--group", "16",
                 "--image", out, "-t", "0", "-n", "6", "--ids", check=True)
    assert len(ok.stdout.split()) == 6
    # same image, other format asked for
    assert_cli_error(run_cli("golden", "--model", model, "--tokenizer", tok, "--weights", "w16", "--image", out,
                             "-n", "2"), "format w8 group 16")
    # same config, other checkpoint (another seed)
    other, other_tok = synthetic("gqa_unshared", 1)
    assert_cli_error(run_cli("golden", "--model", other, "--tokenizer", other_tok, "--weights", "w8", "--group",
                             "16", "--image", out, "-n", "2"), "different checkpoint")
    # other config
    tiny, tiny_tok = synthetic("tiny", 0)
    assert_cli_error(run_cli("golden", "--model", tiny, "--tokenizer", tiny_tok, "--weights", "w8", "--group",
                             "16", "--image", out, "-n", "2"), "made for config")
    # damaged file
    raw = bytearray(out.read_bytes())
    raw[-70] ^= 1
    out.write_bytes(bytes(raw))
    assert_cli_error(run_cli("golden", "--model", model, "--tokenizer", tok, "--weights", "w8", "--group", "16",
                             "--image", out, "-n", "2"), "payload CRC")
    assert_cli_error(run_cli("golden", "--model", model, "--tokenizer", tok, "--image", tmp_path / "none.mlwi"),
                     "not found")
