"""The whole-decoder simulation harness (memory model, C++ harness, build cache, sim.py,
`magma-llama generate`) end to end, on tests/rtl_echo.py's stand-in decoder against the
same computation in Python.  Two Verilator builds: the echo, and a mutant with tracing."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from magma_llama.generation import generate
from tests.conftest import assert_cli_error, run_cli
from tests.rtl_echo import echo, echo_drop_valid, echo_period, echo_tokens

LANES, BITS = 4, 8
SHAPE = "gqa_unshared"         # unshared classifier: the embedding is the image's last section
PROMPT = [1, 17, 250]


@pytest.fixture(scope="module")
def env(synthetic, tmp_path_factory):
    """A private build folder (so the cache starts empty), the model, its image and the echo build."""
    from magma_llama.decoder.build import build_rtl, weight_hex
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.numerics.image import load_or_build
    from magma_llama.numerics.weights import weight_format

    root = tmp_path_factory.mktemp("rtl_build")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MAGMA_LLAMA_BUILD", str(root))
        model, tok = synthetic(SHAPE, 1)
        ckpt = read_checkpoint(model)
        image, image_path = load_or_build(ckpt, weight_format(f"w{BITS}"))
        first = build_rtl(ckpt.config, LANES, BITS, factory=echo, log=None)
        again = build_rtl(ckpt.config, LANES, BITS, factory=echo, log=None)
        hex_path = weight_hex(image, image_path, first.layout)
        words = [int(line, 16) for line in open(hex_path)]
        yield dict(root=root, model=model, tok=tok, cfg=ckpt.config, image=image, image_path=image_path,
                   first=first, again=again, hex=hex_path, words=words, layout=first.layout)


def _run(env, n, inv_t=0, seed=0x1234, prompt=PROMPT, **kw):
    """Feed the prompt and n - len(prompt) + 1 sampled positions through generate(); the beats."""
    from magma_llama.decoder.sim import RtlDecoder
    with RtlDecoder(env["first"].binary, env["hex"], inv_t=inv_t, seed=seed, **kw) as sim:
        list(_steps(sim, prompt, n))
        return sim.beats, sim.stats()


def _steps(sim, prompt, n):
    """generation.generate without its stop on BOS (the echo may emit token 1)."""
    token = prompt[0]
    for pos in range(n):
        forced = pos < len(prompt) - 1
        chosen = sim.step(token, pos, not forced)
        token = prompt[pos + 1] if forced else chosen
        yield token


def test_build_is_cached(env):
    first, again = env["first"], env["again"]
    assert not first.cached and first.verilate_seconds > 0
    assert again.cached and again.binary == first.binary
    from magma_llama.decoder.build import build_key
    keys = {build_key(env["cfg"], LANES, BITS, None, echo), build_key(env["cfg"], LANES, BITS, "vcd", echo),
            build_key(env["cfg"], 8, BITS, None, echo), build_key(env["cfg"], LANES, BITS, None, echo_drop_valid)}
    assert len(keys) == 4
    inputs = json.loads((first.directory / "key.json").read_text())    # what the key was made of
    assert first.directory.name == hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    assert inputs["factory"] == "tests.rtl_echo:echo" and "decoder/harness.cpp" in inputs["sources"]


def test_hex_is_the_port_layout(env):
    assert env["words"] == env["layout"].words(env["image"])


@pytest.mark.parametrize("inv_t,seed", [(0, 0x1234), (81920, 0xDEADBEEF)])
def test_tokens_match_python(env, inv_t, seed):
    n = 24
    beats, stats = _run(env, n, inv_t=inv_t, seed=seed)
    assert [b.token for b in beats] == echo_tokens(env["words"], env["layout"], PROMPT, n, inv_t, seed)
    per_token = env["layout"].embedding.words_per_row + env["layout"].sections["rms_final"].words
    assert [b.wdata_words for b in beats] == [per_token * (k + 1) for k in range(n)]
    assert stats.tokens == n and stats.wdata_words == per_token * n
    assert all(a.cycle < b.cycle for a, b in zip(beats, beats[1:]))


@pytest.mark.parametrize("latency,bytes_per_cycle", [(2, 0), (40, 0), (5, 2), (9, 3), (17, 8)])
def test_latency_and_bandwidth_give_the_predicted_cycles(env, latency, bytes_per_cycle):
    beats, stats = _run(env, 16, latency=latency, bytes_per_cycle=bytes_per_cycle)
    fed_back = beats[len(PROMPT):]          # the echo feeds itself: no host in the loop
    periods = {b.cycle - a.cycle for a, b in zip(fed_back, fed_back[1:])}
    assert periods == {echo_period(env["layout"], latency, bytes_per_cycle)}
    word_bytes = -(-env["layout"].word_bits // 8)
    if bytes_per_cycle:
        assert stats.weight_port_utilisation <= bytes_per_cycle / word_bytes + 1e-9
    assert [b.token for b in beats] == echo_tokens(env["words"], env["layout"], PROMPT, 16, 0, 0x1234)


def test_backpressure_on_tok_out(env):
    free, _ = _run(env, 20)
    stalled, _ = _run(env, 20, ready_percent=30, ready_seed=5)
    assert [b.token for b in stalled] == [b.token for b in free]
    assert stalled[-1].cycle > free[-1].cycle


def test_host_must_feed_back_the_hardware_token(env):
    from magma_llama.decoder.sim import RtlDecoder, RtlError
    with RtlDecoder(env["first"].binary, env["hex"]) as sim:
        out = sim.step(1, 0, True)
        with pytest.raises(RtlError, match="hardware fed back"):
            sim.step(out + 1, 1, True)


def test_bad_weight_request_is_reported(env):
    """A token past the vocabulary makes the echo ask for words past the image."""
    from magma_llama.decoder.sim import RtlDecoder, RtlError
    with RtlDecoder(env["first"].binary, env["hex"]) as sim:
        with pytest.raises(RtlError, match="bad weight request"):
            sim.step(60000, 0, True)


def test_stream_rule_mutant_caught_and_trace_written(env, tmp_path):
    from magma_llama.decoder.build import build_rtl
    from magma_llama.decoder.sim import RtlDecoder, RtlError
    mutant = build_rtl(env["cfg"], LANES, BITS, trace="vcd", factory=echo_drop_valid, root=env["root"] / "rtl",
                       log=None)
    vcd = tmp_path / "ok.vcd"
    with RtlDecoder(mutant.binary, env["hex"], trace=str(vcd)) as sim:   # always ready: the rule holds
        list(_steps(sim, PROMPT, 6))
    text = vcd.read_text()
    assert "$enddefinitions" in text and "TOK_OUT_valid" in text and text.count("\n#") > 100
    with RtlDecoder(mutant.binary, env["hex"], ready_percent=40) as sim:
        with pytest.raises(RtlError, match="TOK_OUT broke the stream rule"):
            list(_steps(sim, PROMPT, 20))


# --- the command ------------------------------------------------------------------------------
def _generate(env, monkeypatch, *args):
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(env["root"]))
    return run_cli("generate", "-m", env["model"], "-z", env["tok"], "--lanes", LANES, "--weights", f"w{BITS}",
                   "--design", "tests.rtl_echo:echo", *args)


def test_generate_ids_match_python(env, monkeypatch):
    from magma_llama.io.tokenizer import read_tokenizer
    from magma_llama.numerics.sampling import inv_temperature_q16, prng_seed
    proc = _generate(env, monkeypatch, "--ids", "-i", "the cat", "-n", 30, "-t", 0.8, "-s", 7, "--latency", 5)
    assert proc.returncode == 0, proc.stderr
    prompt = read_tokenizer(env["tok"], env["cfg"].vocab_size).encode(b"the cat", bos=True)
    hw = echo_tokens(env["words"], env["layout"], prompt, 30, inv_temperature_q16(0.8), prng_seed(7))
    want = [s.next for s in generate(lambda t, pos, sample: hw[pos] if sample else None, prompt, 30)]
    assert list(map(int, proc.stdout.split())) == want
    assert "cycles/token" in proc.stderr and "weight port utilisation" in proc.stderr


def test_generate_text(env, monkeypatch):
    proc = _generate(env, monkeypatch, "-t", 0, "-n", 12, "-i", "a")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("a") and proc.stdout.endswith("\n")


@pytest.mark.parametrize("args,fragment", [
    (["-n", 65], "seq_len"),
    (["-i", "ab " * 100], "prompt"),
    (["--lanes", 3], "lanes"),
    (["--lanes", 1], "too narrow"),
    (["-t", 1, "-p", 0.9], "top-p"),
    (["--latency", 1], "latency"),
    (["--trace", "x.wave"], ".fst or .vcd"),
])
def test_generate_bad_input_before_any_build(synthetic, tmp_path, monkeypatch, args, fragment):
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(tmp_path))
    model, tok = synthetic(SHAPE, 1)
    proc = run_cli("generate", "-m", model, "-z", tok, "--weights", "w8", *args)
    assert_cli_error(proc, fragment)
    assert not (tmp_path / "rtl").exists() and not (tmp_path / "weights").exists()


def test_generate_vocab_too_large(tmp_path, monkeypatch):
    from magma_llama.io.checkpoint import Config
    from magma_llama.io.synthetic import write_synthetic
    cfg = Config(dim=8, hidden_dim=16, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=(1 << 16) + 1, seq_len=8)
    model, tok = write_synthetic(str(tmp_path / "big"), cfg)
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(tmp_path / "build"))
    proc = run_cli("generate", "-m", model, "-z", tok)
    assert_cli_error(proc)
    assert "vocab_size" in proc.stderr or "a burst of 65537 words" in proc.stderr
    assert not os.path.exists(tmp_path / "build" / "rtl")


def test_op_counters_without_an_op_register(env):
    """The echo has no `op` register: every cycle since reset lands in counter 0."""
    from magma_llama.decoder.memory_model import OP_SLOTS
    from magma_llama.decoder.sim import RtlDecoder
    with RtlDecoder(env["first"].binary, env["hex"]) as sim:
        list(_steps(sim, PROMPT, 10))
        ops = sim.op_cycles()
        stats = sim.stats()
        assert len(ops) == OP_SLOTS and ops[1:] == [0] * (OP_SLOTS - 1)
        assert ops[0] == stats.cycles
        list(_steps_from(sim, 10, 4))
        assert sim.op_cycles()[0] == sim.stats().cycles > stats.cycles


def _steps_from(sim, pos, n):
    for p in range(pos, pos + n):
        sim.step(sim.beats[-1].token, p, True)
        yield p


def test_op_register_found_in_the_verilog(env):
    from magma_llama.decoder.memory_model import op_register_bits, testbench_sv
    echo_v = (env["first"].directory / "decoder.v").read_text()
    name = f"Echo_{env['cfg'].dim}_{env['cfg'].vocab_size}_L{LANES}_w{BITS}"
    assert f"module {name}" in echo_v and op_register_bits(echo_v, name) is None
    dec = "module Other(input x);\n  reg [3:0] op;\nendmodule\nmodule Dec(input CLK);\n  reg  [3:0]        op;\nendmodule\n"
    assert op_register_bits(dec, "Dec") == 4 and op_register_bits(dec, "Nope") is None
    assert op_register_bits(dec.replace("[3:0]", "[4:0]"), "Dec") is None      # more ops than counters
    assert "op_now = dut.op;" in testbench_sv("Dec", 64, 8, op_bits=4)
    assert "op_now = 4'd0;" in testbench_sv("Dec", 64, 8)
