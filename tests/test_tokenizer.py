"""Tokenizer: run.c's encode/decode.  The oracle ids come from run.c itself (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magma_llama.errors import TokenizerError, TokenRangeError, VocabMismatchError
from magma_llama.io.tokenizer import BOS, Tokenizer, read_tokenizer, write_tokenizer
from tests.conftest import assert_cli_error, run_cli

ORACLE = json.loads((Path(__file__).parent / "data" / "runc_oracle.json").read_text())


@pytest.mark.parametrize("text", sorted(ORACLE["encode"]["tok512.bin"]))
def test_encode_equals_runc_tok512(stories260k, text):
    tok = read_tokenizer(str(stories260k[1]), 512)
    assert tok.encode(text) == ORACLE["encode"]["tok512.bin"][text]


@pytest.mark.parametrize("text", sorted(ORACLE["encode"]["tokenizer.bin"]))
def test_encode_equals_runc_32k(tokenizer32k, text):
    tok = read_tokenizer(str(tokenizer32k), 32000)
    assert tok.encode(text) == ORACLE["encode"]["tokenizer.bin"][text]


def test_encode_cli(stories260k):
    text = "Once upon a time"
    out = run_cli("encode", "--tokenizer", stories260k[1], text, check=True)
    assert out.stdout.split() == [str(i) for i in ORACLE["encode"]["tok512.bin"][text]]


# --- hand-checkable behaviour on a made-up vocabulary ---------------------------------------
def _toy(tmp_path, extra: list[tuple[bytes, float]], byte_pieces=True) -> Tokenizer:
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    if byte_pieces:
        pieces += [b"<0x%02X>" % i for i in range(256)]
    scores = [0.0] * len(pieces)
    for p, s in extra:
        pieces.append(p)
        scores.append(s)
    path = tmp_path / "tok.bin"
    write_tokenizer(str(path), pieces, scores)
    return read_tokenizer(str(path), len(pieces))


def test_merges_best_score_first(tmp_path):
    # " ", "a", "b", " a", "ab" (score higher than " a"), " ab"
    t = _toy(tmp_path, [(b" ", 0), (b"a", 0), (b"b", 0), (b" a", 1.0), (b"ab", 2.0), (b" ab", 0.5)])
    sp, a, b, sp_a, ab, sp_ab = range(259, 265)
    # "ab" merges first (score 2 > 1), then " " + "ab" -> " ab"
    assert t.encode("ab") == [BOS, sp_ab]
    assert t.encode("ba") == [BOS, sp, b, a]  # " b" and "ba" are not in the vocabulary
    assert t.encode("") == [BOS]
    assert t.encode("a", bos=False, eos=True) == [sp_a, 2]


def test_byte_fallback_and_decode(tmp_path):
    t = _toy(tmp_path, [(b" ", 0), (b"a", 0), (b" a", 1.0)])
    ids = t.encode("é")  # not in vocab: one token per UTF-8 byte, id = byte + 3
    assert ids == [BOS, 259, 0xC3 + 3, 0xA9 + 3]
    assert t.decode(BOS, 0xC3 + 3) == b"\xc3"
    assert t.printable(BOS, 0xC3 + 3) == b""  # run.c's safe_printf drops lone non-printable bytes
    assert t.printable(BOS, ord("\n") + 3) == b"\n"
    assert t.decode(BOS, 261) == b"a"  # leading space stripped after BOS
    assert t.decode(5, 261) == b" a"


def test_out_of_range_ids(tmp_path):
    t = _toy(tmp_path, [(b" ", 0), (b"a", 0)], byte_pieces=False)
    with pytest.raises(TokenRangeError):
        t.encode("z")  # byte fallback id 125 does not exist in a 5-entry vocab
    with pytest.raises(TokenRangeError):
        t.decode(BOS, 99)


def test_vocab_mismatch(stories260k):
    with pytest.raises(VocabMismatchError, match="512"):
        read_tokenizer(str(stories260k[1]), 32000)


def test_vocab_mismatch_cli(stories260k, tokenizer32k):
    assert_cli_error(run_cli("ref", "--model", stories260k[0], "--tokenizer", tokenizer32k, "-n", "2"),
                     "vocab_size is 512")


@pytest.mark.parametrize("data", [b"", b"\x10\0\0\0\0\0\0\0\x05\0\0\0ab", b"\xff\xff\xff\xff"])
def test_corrupt_tokenizer(tmp_path, data):
    p = tmp_path / "t.bin"
    p.write_bytes(data)
    with pytest.raises(TokenizerError):
        read_tokenizer(str(p))
