"""The golden model: llama2.c's tokens, its taps against the float reference, integers only, the CLI."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from magma_llama.generation import generate
from magma_llama.golden import stages as S
from magma_llama.golden.model import GoldenTransformer
from magma_llama.io.checkpoint import read_checkpoint
from magma_llama.io.tokenizer import read_tokenizer
from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACT_FRAC, I64, MATVEC_EXTRA, from_float, rshr, sat, shift_each, to_float
from magma_llama.numerics.image import quantize_checkpoint
from magma_llama.numerics.sampling import HardwareSampler, prng_seed, sample_temperature, xorshift32
from magma_llama.numerics.weights import quantize_matrix, weight_format
from magma_llama.reference.forward import FloatTransformer
from tests.conftest import assert_cli_error, run_cli

ORACLE = json.loads((Path(__file__).parent / "data" / "runc_oracle.json").read_text())["generate"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def real(stories260k):
    ck = read_checkpoint(str(stories260k[0]))
    return ck, read_tokenizer(str(stories260k[1]), ck.config.vocab_size)


def golden_ids(ckpt, tok, fmt: str, prompt: str, steps: int) -> list[int]:
    model = GoldenTransformer(quantize_checkpoint(ckpt, weight_format(fmt)))
    sampler = HardwareSampler(0.0, 1)

    def step(token, pos, sample):
        logits = model.forward(token, pos)
        return sampler.sample(logits) if sample else None
    return [s.next for s in generate(step, tok.encode(prompt.encode()), steps)]


# --- llama2.c's tokens -------------------------------------------------------------------------------
@pytest.mark.checkpoint
@pytest.mark.parametrize("fmt, case, steps", [("w16", "greedy", 256), ("w16", "prompt_greedy", 48),
                                              ("w24", "greedy", 32)])
def test_golden_ids_equal_runc(real, fmt, case, steps):
    want = ORACLE[case]
    prompt = want["flags"][want["flags"].index("-i") + 1] if "-i" in want["flags"] else ""
    assert golden_ids(*real, fmt, prompt, steps) == want["ids"][:steps]


@pytest.mark.checkpoint
def test_cli_golden_ids(stories260k, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(tmp_path))
    args = ("golden", "--model", stories260k[0], "--tokenizer", stories260k[1], "-t", "0", "-n", "24")
    out = run_cli(*args, "--ids", check=True)
    assert [int(x) for x in out.stdout.split()] == ORACLE["greedy"]["ids"][:24]
    cached = list((tmp_path / "weights").glob("stories260K-*-w16-g32-mse-q*.mlwi"))
    assert len(cached) == 1
    text = run_cli(*args, check=True).stdout                    # second run reads the cached image
    assert ORACLE["greedy"]["text"].startswith(text.rstrip("\n")) and len(text) > 40
    raw = bytearray(cached[0].read_bytes())
    raw[len(raw) // 2] ^= 4
    cached[0].write_bytes(bytes(raw))
    assert_cli_error(run_cli(*args), "payload CRC", "delete it to rebuild")


# --- taps against the float reference (synthetic GQA, unshared classifier) -------------------------------
def test_taps_follow_float_reference_gqa_unshared(synthetic):
    ck = read_checkpoint(synthetic("gqa_unshared", 2)[0])
    assert ck.config.kv_mul == 3 and not ck.config.shared_classifier
    g = GoldenTransformer(quantize_checkpoint(ck, weight_format("w24")))
    f = FloatTransformer(ck)
    token = 7
    for pos in range(12):
        g.forward(token, pos)
        f.forward(token, pos)
        assert set(g.taps) == set(f.taps)
        for name, want in f.taps.items():
            got = to_float(g.taps[name])
            assert np.abs(got - want).max() <= 2e-5 * max(1.0, np.abs(want).max()), (pos, name)
            assert g.taps[name].dtype == I64
        token = int(np.argmax(f.taps["logits"]))


def test_detailed_taps_chain_through_the_stages(synthetic):
    """Every detailed tap is its stage applied to the tap before it (what per-stage RTL tests rely on)."""
    ck = read_checkpoint(synthetic("gqa_unshared", 1)[0])
    img = quantize_checkpoint(ck, weight_format("w16"))
    g = GoldenTransformer(img, detailed_taps=True)
    plain = GoldenTransformer(img)
    for pos, token in enumerate([3, 9, 4]):
        logits = g.forward(token, pos)
        assert (logits == plain.forward(token, pos)).all()
    tp, c = g.taps, ck.config
    mv = lambda name, x: S.matvec(S.MatVecWeights.from_quant(img.matrix(name)), x)  # noqa: E731
    assert (tp["layer1.v"] == mv("layer1.wv", tp["layer1.xb_att"])).all()
    assert (tp["layer1.q"] == S.rope(mv("layer1.wq", tp["layer1.xb_att"]), 2, c.head_size, g.cos, g.sin)).all()
    assert (tp["layer1.attn"] == S.residual(tp["layer0.ffn"], mv("layer1.wo", tp["layer1.att"]))).all()
    assert (tp["layer1.swiglu"] == S.swiglu(tp["layer1.h1"], tp["layer1.h3"])).all()
    assert (tp["layer1.ffn"] == S.residual(tp["layer1.attn"], mv("layer1.w2", tp["layer1.swiglu"]))).all()
    assert (tp["logits"] == mv("wcls", tp["xb_final"])).all()
    head = 4                                          # GQA: query head 4 reads kv head 4 // 3 = 1
    hs = c.head_size
    kv = g.key_cache[1, :3, hs:2 * hs], g.value_cache[1, :3, hs:2 * hs]
    assert (tp["layer1.att"][head * hs:(head + 1) * hs] ==
            S.attention_head(tp["layer1.q"][head * hs:(head + 1) * hs], *kv, g.isq)).all()


def test_weight_beats_stream_rows_in_lane_order():
    from magma_llama.numerics.weights import weight_beats
    rng = np.random.default_rng(8)
    q = quantize_matrix(rng.standard_normal((5, 70)).astype(np.float32), 8, 32)
    x = rng.integers(-(1 << 20), 1 << 20, 70, dtype=I64)
    want = S.matvec(S.MatVecWeights.from_quant(q), x)
    for lanes in (1, 4, 16, 64):
        m, e = weight_beats(q, lanes)
        assert m.shape == (5, -(-70 // lanes), lanes)
        assert (m.reshape(5, -1)[:, :70] == q.mant).all() and (e.reshape(5, -1)[:, :70] == q.exp_per_weight()).all()
        # a lane-by-lane engine: per beat, L products shifted by their own exponent, into one accumulator
        xs = np.zeros(m.shape[1] * lanes, I64)
        xs[:70] = x
        xs = xs.reshape(-1, lanes)
        acc = np.zeros(5, I64)
        for b in range(m.shape[1]):
            acc += shift_each(m[:, b] * xs[b], e[:, b] + MATVEC_EXTRA).sum(axis=1)
        assert (sat(rshr(acc, MATVEC_EXTRA)) == want).all()


# --- no floats in the datapath --------------------------------------------------------------------------
RUNTIME_MODULES = ["magma_llama/golden/stages.py", "magma_llama/golden/model.py",
                   "magma_llama/numerics/functions.py"]


@pytest.mark.parametrize("path", RUNTIME_MODULES)
def test_runtime_sources_have_no_float_operations(path):
    """No float literal, true division, float() or float dtype in the run-time modules."""
    tree = ast.parse((REPO / path).read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            bad.append(f"float literal {node.value} at line {node.lineno}")
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            bad.append(f"true division at line {node.lineno}")
        if isinstance(node, ast.Name) and node.id == "float":
            bad.append(f"float() at line {node.lineno}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in ("np", "numpy", "math") and (node.attr.startswith("float") or node.attr in (
                    "exp", "exp2", "log", "log2", "sqrt", "sin", "cos", "tanh", "divide", "true_divide")):
            bad.append(f"{node.value.id}.{node.attr} at line {node.lineno}")
    assert not bad, bad


def _float_values_seen(run) -> tuple[dict, list[str]]:
    """Run `run()` under a tracer over the golden and numerics run-time modules: every array bound
    to a name, and every value returned, must be an integer array or an int."""
    seen, bad = {"arrays": 0, "frames": 0}, []
    watched = ("magma_llama.golden", "magma_llama.numerics.functions", "magma_llama.numerics.fixed",
               "magma_llama.numerics.sampling")

    def check(v, where, depth=0):
        if isinstance(v, np.ndarray):
            seen["arrays"] += 1
            if v.dtype.kind not in "iub":
                bad.append(f"{where}: {v.dtype} array")
        elif isinstance(v, (float, complex, np.floating)):
            bad.append(f"{where}: {type(v).__name__} {v!r}")
        elif isinstance(v, (list, tuple)) and depth < 2:
            for x in v[:64]:
                check(x, where, depth + 1)

    def tracer(frame, event, arg):
        if not frame.f_globals.get("__name__", "").startswith(watched):
            return None
        seen["frames"] += 1
        where = f"{frame.f_code.co_name}:{frame.f_lineno}"
        for name, v in frame.f_locals.items():
            check(v, f"{where} {name}")
        if event == "return":
            check(arg, f"{where} return")
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return seen, bad


def _three_tokens(model):
    sampler = HardwareSampler(0.9, 5)

    def run():
        token = 1
        for pos in range(3):
            token = sampler.sample(model.forward(token, pos))
    return run


def test_golden_forward_creates_no_float_values(synthetic):
    """Constructing the model (building tables) is elaboration and may use floats; forward may not."""
    ck = read_checkpoint(synthetic("gqa_unshared", 0)[0])
    model = GoldenTransformer(quantize_checkpoint(ck, weight_format("w16")))
    seen, bad = _float_values_seen(_three_tokens(model))
    assert seen["frames"] > 100 and seen["arrays"] > 1000, seen
    assert not bad, bad[:10]


def test_float_tracer_catches_a_float(synthetic, monkeypatch):
    ck = read_checkpoint(synthetic("tiny", 0)[0])
    model = GoldenTransformer(quantize_checkpoint(ck, weight_format("w16")))
    real_swiglu = S.swiglu
    monkeypatch.setattr(S, "swiglu", lambda h1, h3, frac=ACT_FRAC: np.round(  # a float sneaks in
        to_float(real_swiglu(h1, h3, frac)) * (1 << frac)).astype(I64))
    _, bad = _float_values_seen(_three_tokens(model))
    assert any("float64" in b for b in bad), bad[:3]


# --- stages against float maths ---------------------------------------------------------------------------
def test_matvec_is_exact_up_to_the_final_rounding():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((20, 70)).astype(np.float32)
    q = quantize_matrix(w, 16, 32)
    x = rng.integers(-(1 << 22), 1 << 22, 70, dtype=I64)
    y = S.matvec(S.MatVecWeights.from_quant(q), x)
    exact = q.dequantize() @ x.astype(np.float64)                     # Q.F units
    assert np.abs(y - exact).max() <= 0.5 + 70 * 2.0 ** -17 + 1e-6
    big = np.full(70, (1 << 31) - 1, I64)
    assert S.matvec(S.MatVecWeights.from_quant(quantize_matrix(np.ones((1, 70), np.float32), 16, 32)), big)[0] \
        == (1 << 31) - 1                                                # saturates, no wrap


def test_rmsnorm_and_attention_head_against_float():
    rng = np.random.default_rng(4)
    d = 48
    x = rng.standard_normal(d) * 0.7
    gain = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
    gq = S.GainVector.from_quant(quantize_matrix(gain[None, :], 24, 32))
    out = to_float(S.rmsnorm(from_float(x), gq, S.RmsNormConsts.make(d)))
    xf = to_float(from_float(x))
    want = gain * xf / np.sqrt(np.mean(xf * xf) + 1e-5)
    assert np.abs(out - want).max() <= 4e-6 * np.abs(want).max() + 2.0 ** -ACT_FRAC

    hs, n = 8, 40
    q, k, v = (rng.standard_normal(s) * 2 for s in (hs, (n, hs), (n, hs)))
    q, k, v = from_float(q), from_float(k), from_float(v)
    got = to_float(S.attention_head(q, k, v, T.inv_sqrt_q30(hs)))
    qf, kf, vf = to_float(q), to_float(k), to_float(v)
    s = kf @ qf / np.sqrt(hs)
    p = np.exp(s - s.max())
    want = (p / p.sum()) @ vf
    assert np.abs(got - want).max() <= 1e-5


def _attention_one_position_at_a_time(q, keys, values, isq, frac=ACT_FRAC):
    """The attention stage as the hardware runs it: one K/V row per step, state (M, l, O),
    written independently of the golden model's run-at-once evaluation (Python ints)."""
    from magma_llama.numerics.functions import exp_neg, recip
    x = 12                                            # ATT_EXTRA
    m = l = None
    o = [0] * len(q)
    rnd = lambda v, s: (v + (1 << (s - 1))) >> s    # noqa: E731
    clamp = lambda v: min(max(v, -(1 << 31)), (1 << 31) - 1)  # noqa: E731
    for k, v in zip(keys.tolist(), values.tolist()):
        dot = sum(rnd(a * b, 16) for a, b in zip(q.tolist(), k))
        s = clamp(rnd(dot * isq, 30 + frac - 16))
        if m is None:
            m, l = s, 0
        elif s > m:
            alpha = int(exp_neg(np.array([m - s], I64), frac)[0])
            l = rnd(l * alpha, 30)
            o = [rnd(oi * alpha, 30) for oi in o]
            m = s
        p = int(exp_neg(np.array([s - m], I64), frac)[0])
        l += p
        o = [oi + rnd(p * vi, 30 - x) for oi, vi in zip(o, v)]
    mant, exp = recip(l, 30)
    return np.array([clamp(rnd(oi * mant, 30 - exp + x)) for oi in o], I64)


@pytest.mark.parametrize("trend", [0.0, 0.05, -0.05])
def test_attention_equals_the_sequential_hardware_loop(trend):
    """Rising scores make a new run at almost every position; falling ones make a single run."""
    rng = np.random.default_rng(int(trend * 100) + 7)
    hs, n = 8, 60
    q = from_float(rng.standard_normal(hs))
    k = from_float(rng.standard_normal((n, hs)) + trend * np.arange(n)[:, None] * np.sign(to_float(q))[None])
    v = from_float(rng.standard_normal((n, hs)) * 3)
    isq = T.inv_sqrt_q30(hs)
    assert (S.attention_head(q, k, v, isq) == _attention_one_position_at_a_time(q, k, v, isq)).all()


def test_rope_rotates_like_the_reference():
    cos, sin = T.rope_tables(8, 64)
    rng = np.random.default_rng(9)
    vec = from_float(rng.standard_normal(16))
    pos = 41
    got = to_float(S.rope(vec, pos, 8, cos, sin))
    v = to_float(vec)
    freq = 1.0 / 10000.0 ** (np.arange(0, 8, 2) / 8)
    ang = np.tile(pos * freq, 2)
    want = np.empty(16)
    want[0::2] = v[0::2] * np.cos(ang) - v[1::2] * np.sin(ang)
    want[1::2] = v[0::2] * np.sin(ang) + v[1::2] * np.cos(ang)
    assert np.abs(got - want).max() <= 1e-5


# --- the hardware sampler ---------------------------------------------------------------------------------
def test_xorshift32():
    assert xorshift32(1) == 270369                      # Marsaglia's xorshift32 (13, 17, 5) from 1
    s, seen = prng_seed(0), set()
    for _ in range(1000):
        s = xorshift32(s)
        seen.add(s)
    assert len(seen) == 1000 and 0 not in seen
    assert prng_seed(1 << 32) == 1 and prng_seed(0) != 0


def test_temperature_sampling_follows_softmax():
    logits = from_float(np.array([1.0, 0.0, -1.0, 2.5]))
    inv_t = 1 << 16                                      # T = 1
    state, counts = prng_seed(11), np.zeros(4)
    n = 8000
    for _ in range(n):
        state = xorshift32(state)
        counts[sample_temperature(logits, inv_t, state)] += 1
    p = np.exp(to_float(logits))
    p /= p.sum()
    assert np.abs(counts / n - p).max() < 0.02
    # the coin compares against the integer cdf: word 0 picks the first token, the top word the last
    assert sample_temperature(logits, inv_t, 0) == 0 and sample_temperature(logits, inv_t, (1 << 32) - 1) == 3


def test_cli_golden_sampling_and_topp(synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(tmp_path))        # the image cache goes there
    model, tok = synthetic("tiny", 0)
    base = ("golden", "--model", model, "--tokenizer", tok, "-n", "20", "--ids")
    a = run_cli(*base, "-t", "0.9", "-s", "42", check=True).stdout
    b = run_cli(*base, "-t", "0.9", "-s", "42", "-p", "1", check=True).stdout
    c = run_cli(*base, "-t", "0.9", "-s", "43", check=True).stdout
    assert a == b and a != c
    assert_cli_error(run_cli(*base, "-t", "0.9", "-p", "0.9"), "top-p", "not supported")
    assert run_cli(*base, "-t", "0", "-p", "0.9").returncode == 0     # greedy: top-p plays no part
    assert_cli_error(run_cli(*base, "--weights", "w12"), "--weights")
    assert_cli_error(run_cli(*base, "--group", "0"), "group size")
