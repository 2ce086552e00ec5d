"""The float reference reproduces run.c: ids (greedy, sampled, top-p, prompted) and text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from magma_llama.generation import Step, clamp_steps, generate
from magma_llama.io.checkpoint import read_checkpoint
from magma_llama.io.tokenizer import read_tokenizer
from magma_llama.reference.forward import FloatTransformer, seqsum
from magma_llama.reference.sampler import Sampler, XorShiftRng, sample_topp
from tests.conftest import assert_cli_error, run_cli

ORACLE = json.loads((Path(__file__).parent / "data" / "runc_oracle.json").read_text())


def _flag(flags, name, default):
    return type(default)(flags[flags.index(name) + 1]) if name in flags else default


def ref_ids(stories260k, flags) -> list[int]:
    ck = read_checkpoint(str(stories260k[0]))
    tok = read_tokenizer(str(stories260k[1]), ck.config.vocab_size)
    model = FloatTransformer(ck)
    sampler = Sampler(_flag(flags, "-t", 1.0), _flag(flags, "-p", 0.9), _flag(flags, "-s", 0))
    prompt = tok.encode(_flag(flags, "-i", ""))

    def step(token, pos, sample):
        logits = model.forward(token, pos)
        return sampler.sample(logits) if sample else None
    return [s.next for s in generate(step, prompt, clamp_steps(_flag(flags, "-n", 256), 512))]


@pytest.mark.parametrize("case", sorted(ORACLE["generate"]))
def test_ids_equal_runc(stories260k, case):
    want = ORACLE["generate"][case]
    assert ref_ids(stories260k, want["flags"]) == want["ids"]


def test_cli_text_equals_runc(stories260k):
    want = ORACLE["generate"]["greedy"]
    out = run_cli("ref", "--model", stories260k[0], "--tokenizer", stories260k[1], *want["flags"], check=True)
    assert out.stdout == want["text"]
    assert out.stdout.startswith("Once upon a time, there was a little girl named Lily. "
                                 "She loved to play outside in the park.")


def test_cli_ids_with_prompt(stories260k):
    want = ORACLE["generate"]["prompt_t0.8_s3"]
    out = run_cli("ref", "--model", stories260k[0], "--tokenizer", stories260k[1], *want["flags"], "--ids",
                  check=True)
    assert [int(x) for x in out.stdout.split()] == want["ids"]


# --- pieces of run.c's arithmetic --------------------------------------------------------------
def test_seqsum_is_sequential():
    # (1e8 + 1) - 1e8 in float32 is 0 left to right; a pairwise or reordered sum gives 1
    x = np.array([1e8, 1, -1e8, 0], np.float32)
    assert seqsum(x) == np.float32(0.0)
    assert np.float32(1e8) + np.float32(1) == np.float32(1e8)


def test_xorshift_matches_c_arithmetic():
    rng = XorShiftRng(42)
    # first step written out with 64-bit wrap-around, as C does it
    s = 42
    s ^= s >> 12
    s ^= (s << 25) & (2**64 - 1)
    s ^= s >> 27
    assert rng.u32() == ((s * 0x2545F4914F6CDD1D) % 2**64) >> 32
    coins = [XorShiftRng(7).f32() for _ in range(3)]
    assert all(0 <= c < 1 for c in coins)


def test_topp_keeps_nucleus_only():
    probs = np.array([0.5, 0.3, 0.15, 0.05], np.float32)
    # top-p 0.7: cumulative 0.5, 0.8 > 0.7 -> candidates {0, 1}; a coin near 1 picks index 1
    assert sample_topp(probs, 0.7, np.float32(0.999)) == 1
    assert sample_topp(probs, 0.7, np.float32(0.0)) == 0


def test_generation_loop_forces_prompt_and_stops_on_bos():
    calls = []

    def step(token, pos, sample):
        calls.append((token, pos, sample))
        return 1 if pos == 3 else 7
    steps = list(generate(step, [1, 5, 6], 10))
    assert [(s.token, s.next, s.forced) for s in steps] == [
        (1, 5, True), (5, 6, True), (6, 7, False), (7, 1, False)]
    assert [c[2] for c in calls] == [False, False, True, True]
    assert clamp_steps(0, 16) == 16 and clamp_steps(99, 16) == 16 and clamp_steps(5, 16) == 5


# --- bad input: one error line, exit 2 --------------------------------------------------------
@pytest.mark.parametrize("flags,fragment", [
    (["-t", "-0.5"], "temperature"),
    (["-t", "nan"], "temperature"),
    (["-p", "1.5"], "top-p"),
    (["-p", "-0.1"], "top-p"),
    (["-n", "-3"], "steps"),
    (["-n", "ten"], "steps"),
    (["-s", "-1"], "seed"),
    (["--frobnicate"], "unrecognized"),
])
def test_bad_flags(synthetic, flags, fragment):
    model, tok = synthetic("tiny")
    assert_cli_error(run_cli("ref", "--model", model, "--tokenizer", tok, *flags), fragment)


def test_missing_files(tmp_path, synthetic):
    model, tok = synthetic("tiny")
    assert_cli_error(run_cli("ref", "--model", tmp_path / "none.bin", "--tokenizer", tok), "not found")
    assert_cli_error(run_cli("ref", "--model", model, "--tokenizer", tmp_path / "none.bin"), "not found")
    assert_cli_error(run_cli("encode", "--tokenizer", tmp_path / "none.bin", "hi"), "not found")


def test_prompt_longer_than_seq_len(synthetic):
    model, tok = synthetic("tiny")  # seq_len 32, single-letter pieces
    assert_cli_error(run_cli("ref", "--model", model, "--tokenizer", tok, "-i", "xq" * 40), "seq_len")


def test_token_out_of_range(synthetic):
    model, tok = synthetic("tiny")  # 32 entries, no byte pieces: 'Z' needs byte fallback id 93
    assert_cli_error(run_cli("ref", "--model", model, "--tokenizer", tok, "-i", "Z"), "token id")


@pytest.mark.parametrize("shape", ["tiny", "gqa_unshared"])
def test_synthetic_models_run(synthetic, shape):
    model, tok = synthetic(shape)
    out = run_cli("ref", "--model", model, "--tokenizer", tok, "-t", "0", "-n", "12", "--ids", check=True)
    ids = [int(x) for x in out.stdout.split()]
    assert 1 <= len(ids) <= 12


def test_logits_bit_identical_to_runc(stories260k):
    """Token ids are robust to last-bit drift; this pins the arithmetic itself (order of sums, libm)."""
    import hashlib
    want = ORACLE["logits_sha256"]
    model = FloatTransformer(read_checkpoint(str(stories260k[0])))
    token, chunks = 1, []
    for pos in range(want["positions"]):
        logits = model.forward(token, pos)
        chunks.append(logits.astype("<f4").tobytes())
        token = int(np.argmax(logits))
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == want["sha256"]
