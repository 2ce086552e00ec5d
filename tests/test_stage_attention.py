"""Attention head under random stalls, bit-exact against golden.stages.attention_head.

One Verilator build holds six heads, each in a wrapper that holds `pos` constant, fed and
drained by the random-stall sources/sinks of streams/testbench.py:
- `r0`, `r3`, `r7`: stories260K layer 0 (head size 8, context 512) at positions 0, 3, 7 of
  a greedy run of the golden model: Q beats are the RoPE'd query heads of that position,
  K / V rows the key / value cache rows 0..pos of each head's KV head (8 heads share 4);
- `g7`: the synthetic gqa_unshared model (6 heads on 2 KV heads), position 7;
- `x`, `xm`: random data (head size 8, context 16, pos 11) whose keys make the running max
  rise several times per head and whose scores saturate at both ends; `xm` is the
  `no_rescale` mutant, which must be caught.
Source beat k of a port is rom[(k + seed) % 256]; the expected outputs come from the beats
that actually moved (K and V rows are 256 bits, not logged: read back from the ROMs).  For
the real data the ROMs list the heads in a cycle of 8 (gqa: heads 0..5, 1, 4) so that, with
seeds whose low byte is a multiple of 64, head n of every run is real head n mod 8."""

from __future__ import annotations

import numpy as np
import pytest

from magma_llama import paths
from magma_llama.golden.stages import attention_head
from magma_llama.numerics import tables as T
from magma_llama.numerics.fixed import ACT_BITS, ACT_MAX, ACT_MIN, I64, from_float
from tests.streams_sim import Sim, check_protocol, once_per_test_run, source_prefix

HS = 8
CYCLES = 2000
# (seed, how often sources offer, how often sinks accept), out of 256; low bytes multiples of 64
RUNS = [(0x1200, 128, 128), (0xBE40, 255, 255), (0x0080, 250, 40), (0x7AC0, 60, 250), (0x5E00, 190, 110)]
DENSE_RUN = 1
# label: (context, pos, data); the real heads cycle through HEADS[data]
DEVICES = {"r0": (512, 0, "stories"), "r3": (512, 3, "stories"), "r7": (512, 7, "stories"),
           "g7": (64, 7, "gqa"), "x": (16, 11, "random"), "xm": (16, 11, "random")}
MUTANT = {"xm": "no_rescale"}
HEADS = {"stories": list(range(8)), "gqa": [0, 1, 2, 3, 4, 5, 1, 4]}
N_TOKENS = 8
MASK = (1 << ACT_BITS) - 1


# --- data --------------------------------------------------------------------------------
def _golden_run(image):
    """Greedy run of N_TOKENS from BOS: per position layer 0's q tap and att tap, and the
    layer-0 caches.  Returns (q [pos, H, hs], att [pos, H, hs], keys/values [pos, kv heads, hs], kv_mul)."""
    from magma_llama.golden.model import GoldenTransformer
    from magma_llama.numerics.functions import argmax
    g = GoldenTransformer(image, detailed_taps=True)
    c = g.cfg
    qs, atts, tok = [], [], 1
    for pos in range(N_TOKENS):
        tok = argmax(g.forward(tok, pos))
        qs.append(g.taps["layer0.q"].reshape(c.n_heads, c.head_size).copy())
        atts.append(g.taps["layer0.att"].reshape(c.n_heads, c.head_size).copy())
    shape = (N_TOKENS, c.n_kv_heads, c.head_size)
    return {"q": np.array(qs), "att": np.array(atts), "k": g.key_cache[0, :N_TOKENS].reshape(shape),
            "v": g.value_cache[0, :N_TOKENS].reshape(shape), "kv_mul": c.kv_mul, "isq": g.isq}


def _image(path):
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.numerics.image import quantize_checkpoint
    from magma_llama.numerics.weights import weight_format
    return quantize_checkpoint(read_checkpoint(str(path)), weight_format("w16"))


def _models(workdir):
    from magma_llama.io.synthetic import SHAPES, write_synthetic
    out = {}
    model = paths.default_model()
    out["stories"] = _golden_run(_image(model)) if model.exists() else None
    gqa, _ = write_synthetic(str(workdir / "synthetic"), SHAPES["gqa_unshared"], 0, name="gqa")
    out["gqa"] = _golden_run(_image(gqa))
    return out


def _pack_row(row):
    v = 0
    for i, x in enumerate(row):
        v |= (int(x) & MASK) << (ACT_BITS * i)
    return v


def _unpack_row(v):
    return [_signed((v >> (ACT_BITS * i)) & MASK) for i in range(HS)]


def _signed(v, w=ACT_BITS):
    return v - (1 << w) if v >> (w - 1) else v


def _random_roms():
    """Q, K, V ROMs of the random heads: queries of both signs; key rows on a ramp of
    period 5 (the score climbs, so the max rises again and again) with 1 row in 12 at
    +-2047.99 (scores saturate); values moderate with a few at the int32 extremes."""
    rng = np.random.default_rng(11)
    q = from_float(rng.uniform(0.2, 3.0, 256) * rng.choice([1, 1, 1, -1], 256))
    qrom = [int(x) & MASK for x in q]
    krom, vrom = [], []
    for j in range(256):
        ramp = (j % 5) * rng.uniform(0.5, 2.5)
        k = from_float(ramp + rng.standard_normal(HS) * 0.3)
        if j % 12 == 7:
            k = np.full(HS, ACT_MAX if j % 24 == 7 else ACT_MIN, I64)
        v = from_float(rng.standard_normal(HS) * 4.0)
        big = rng.random(HS) < 0.05
        v[big] = rng.choice([ACT_MIN, ACT_MAX], big.sum())
        krom.append(_pack_row(k))
        vrom.append(_pack_row(v))
    return {"Q": qrom, "K": krom, "V": vrom}


def _real_roms(run, pos):
    """The ROMs of a real-data device: heads in the cycle HEADS, positions 0..pos each."""
    heads = HEADS[run["name"]]
    npos = pos + 1
    qrom = [int(run["q"][pos, heads[(j // HS) % 8], j % HS]) & MASK for j in range(256)]
    kv = [heads[(j // npos) % 8] // run["kv_mul"] for j in range(256)]
    krom = [_pack_row(run["k"][j % npos, kv[j]]) for j in range(256)]
    vrom = [_pack_row(run["v"][j % npos, kv[j]]) for j in range(256)]
    return {"Q": qrom, "K": krom, "V": vrom}


def _roms(models):
    out = {}
    for label, (_, pos, data) in DEVICES.items():
        if data == "random":
            out[label] = _random_roms()
        else:
            run = models[data] or models["gqa"]       # no checkpoint: a stand-in keeps the build
            out[label] = _real_roms(dict(run, name=data if models[data] else "gqa"), pos)
    return out


# --- bench -----------------------------------------------------------------------------------
def _at_pos(dut, pos, seq_len):
    """`dut` with its plain `pos` input tied to a constant (make_bench drives streams only)."""
    import magma as m
    from magma_llama.streams._base import clocked
    from magma_llama.streams.types import StreamIn, StreamOut, clog2
    Row = m.Array[HS, m.Bits[ACT_BITS]]

    class AtPos(m.Circuit):
        name = f"{dut.name}_at{pos}"
        io = clocked(Q=StreamIn(m.Bits[ACT_BITS]), K=StreamIn(Row), V=StreamIn(Row),
                     O=StreamOut(m.Bits[ACT_BITS]))
        head = dut(name="head")
        for port in ("Q", "K", "V", "O"):
            m.wire(getattr(io, port), getattr(head, port))
        head.pos @= m.uint(pos, clog2(seq_len))
        head.CLK @= io.CLK
        head.RESET @= io.RESET
    return AtPos


def _simulate(workdir):
    from magma_llama.stages.attention import Attention
    from magma_llama.streams.testbench import make_bench, run_bench
    models = _models(workdir)
    roms = _roms(models)
    duts = {label: _at_pos(Attention(HS, seq_len, mutant=MUTANT.get(label)), pos, seq_len)
            for label, (seq_len, pos, _) in DEVICES.items()}
    bench, infos, extras = make_bench(duts, rom_fn=lambda label, port, widths, rng: roms[label].get(port),
                                      name="AttentionBench")
    runs = run_bench(bench, infos, extras, RUNS, CYCLES, workdir, flags=("--output-split", "0"),
                     unprinted=tuple(f"{k}_{p}" for k in DEVICES for p in "KV"))
    return Sim(infos, extras, runs), models


@pytest.fixture(scope="module")
def sim(request):
    return once_per_test_run(request, "attention_bench", _simulate)


# --- checks ------------------------------------------------------------------------------------
def _fires(run, key):
    return [t for t, r in enumerate(run.rows) if r[f"{key}_valid"] and r[f"{key}_ready"]]


def _heads(sim, label, run):
    """[(q, keys, values, outputs)] per head that started, from the beats that moved; checks
    the order of the streams (no K before its query is loaded, no V before its K)."""
    _, pos, _ = DEVICES[label]
    npos = pos + 1
    qs = [_signed(v) for v in source_prefix(sim, run, f"{label}_Q")]
    kt, vt, qt = _fires(run, f"{label}_K"), _fires(run, f"{label}_V"), _fires(run, f"{label}_Q")
    for j, t in enumerate(kt):                       # K beat j belongs to head j // npos
        assert len(qt) >= HS * (j // npos + 1) and qt[HS * (j // npos + 1) - 1] < t, \
            f"{label}: K beat {j} taken before its query was loaded"
    for j, t in enumerate(vt):
        assert j < len(kt) and kt[j] < t, f"{label}: V beat {j} taken before its K"
    kinfo, vinfo = sim.infos[f"{label}_K"], sim.infos[f"{label}_V"]
    ks = [_unpack_row(kinfo.beat(j, run.seed)) for j in range(len(kt))]
    vs = [_unpack_row(vinfo.beat(j, run.seed)) for j in range(len(vt))]
    os_ = [_signed(v) for v in run.transfers(f"{label}_O")]
    out = []
    for n in range(-(-len(os_) // HS)):
        o = os_[n * HS:(n + 1) * HS]
        assert len(vs) >= (n + 1) * npos, f"{label}: head {n} gave outputs before all its V rows"
        out.append((np.array(qs[n * HS:(n + 1) * HS], I64), np.array(ks[n * npos:(n + 1) * npos], I64),
                    np.array(vs[n * npos:(n + 1) * npos], I64), o))
    return out


def _check_device(sim, label, runs=None):
    """Every O beat equals golden attention_head of the beats that moved; returns #heads."""
    isq = T.inv_sqrt_q30(HS)
    total = 0
    for run in runs or sim.runs:
        check_protocol(sim, label, run)
        for n, (q, k, v, o) in enumerate(_heads(sim, label, run)):
            want = attention_head(q, k, v, isq).tolist()
            assert o == want[:len(o)], f"{label} seed {run.seed:#x} head {n}: {o} != golden {want}"
            total += len(o) == HS
    return total


def _check_real(sim, models, label):
    """The heads that moved are the real heads of the model, and golden attention_head on
    them is the model's own layer-0 att tap (so the bench tests real attention)."""
    _, pos, data = DEVICES[label]
    run_data, heads = models[data], HEADS[data]
    for run in sim.runs:
        for n, (q, k, v, o) in enumerate(_heads(sim, label, run)):
            h = heads[n % 8]
            kvh = h // run_data["kv_mul"]
            assert (q == run_data["q"][pos, h]).all(), f"{label}: head {n} query is not head {h}'s"
            assert (k == run_data["k"][:pos + 1, kvh]).all() and (v == run_data["v"][:pos + 1, kvh]).all()
            assert attention_head(q, k, v, run_data["isq"]).tolist() == run_data["att"][pos, h].tolist()


@pytest.mark.parametrize("label", ["r0", "r3", "r7"])
def test_attention_stories260k_bit_exact(sim, stories260k, label):
    s, models = sim
    _check_real(s, models, label)
    total = _check_device(s, label)
    assert total >= 2 * 8, f"{label}: only {total} heads checked"


def test_attention_gqa_unshared_bit_exact(sim):
    s, models = sim
    _check_real(s, models, "g7")
    assert _check_device(s, "g7") >= 2 * 6


def _rises(q, k):
    """How often the running max rises within the head, and whether a score saturated."""
    from magma_llama.golden.stages import attention_scores
    s = attention_scores(q[None], k[:, None], T.inv_sqrt_q30(HS))[0]
    rises = int((s[1:] > np.maximum.accumulate(s)[:-1]).sum())
    return rises, bool(((s == ACT_MAX) | (s == ACT_MIN)).any())


def test_attention_random_rescales_and_saturates_bit_exact(sim):
    s, _ = sim
    total = _check_device(s, "x")
    assert total >= 30, f"only {total} heads checked"
    stats = [_rises(q, k) for run in s.runs for q, k, _, _ in _heads(s, "x", run)]
    assert sum(r >= 3 for r, _ in stats) > len(stats) // 3, "the running max seldom rises 3 times"
    assert sum(r >= 1 for r, _ in stats) > len(stats) * 9 // 10, "heads without a rescale"
    assert sum(sat for _, sat in stats) > len(stats) // 4, "too few heads with a saturated score"


def test_attention_no_rescale_mutant_caught(sim):
    s, _ = sim
    with pytest.raises(AssertionError, match="golden"):
        _check_device(s, "xm")


def head_timing(sim, label, run):
    """Per completed head: (cycles from its first Q beat to its first O.valid, cycles from
    its first to its last V beat, from its first Q beat to its last O beat)."""
    _, pos, _ = DEVICES[label]
    npos = pos + 1
    qt, vt, ot = (_fires(run, f"{label}_{p}") for p in "QVO")
    ov = [t for t, r in enumerate(run.rows) if r[f"{label}_O_valid"]]
    out = []
    for n in range(len(ot) // HS):
        first_o = next(t for t in ov if t > (ot[n * HS - 1] if n else -1))
        out.append((first_o - qt[n * HS], vt[(n + 1) * npos - 1] - vt[n * npos],
                    ot[(n + 1) * HS - 1] - qt[n * HS]))
    return out


def test_attention_dense_throughput(sim):
    """With sources and sinks ready 255/256 of cycles a position costs about one cycle
    (first to last V beat of a head) and a head's outputs come one per cycle."""
    s, _ = sim
    run = s.runs[DENSE_RUN]
    for label in ("r7", "x"):
        npos = DEVICES[label][1] + 1
        t = head_timing(s, label, run)
        assert len(t) > 10
        per_pos = sum(v for _, v, _ in t) / len(t) / (npos - 1)
        assert per_pos < 1.1, f"{label}: {per_pos:.2f} cycles per position"
        ot = _fires(run, f"{label}_O")
        gaps = [ot[n * HS + HS - 1] - ot[n * HS] for n in range(len(ot) // HS)]
        assert sum(gaps) / len(gaps) < (HS - 1) * 1.1, f"{label}: outputs of a head not one per cycle"
