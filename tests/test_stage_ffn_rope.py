"""SwiGLU and RoPE stages under random stalls, bit-exact against golden.stages.swiglu / rope.

One Verilator build holds (each port fed and drained by the random-stall sources and
sinks of streams/testbench.py):
- `sa`: SwiGlu fed stories260K layer 0 h1/h3 (172 elements) then 84 random pairs
  (saturating products, large negative h1 in silu's tail);
- `sb`: SwiGlu fed the synthetic gqa_unshared model's h1/h3 at two positions (hidden 100,
  not a multiple of 16), then 56 random pairs;
- `ra`: Rope(8, 512) (stories260K), `rb`: Rope(8, 64) (gqa_unshared), each in a wrapper that
  plays the controller: it holds `pos` for a whole head (8 elements) and steps it through
  POS_A / POS_B, one entry per head of the 256-beat ROM (real q and k before RoPE at
  positions 0 and > 0, the same vectors at other positions up to seq_len - 1, and random
  extreme values, and full-scale pairs that saturate);
- `rb_sin`, `rb_order`: `rb` with the mutants `sin_sign` and `pair_order`, and `sa_floor`:
  `sa` with `floor_shift` (a truncating final shift); each must fail its check.
Source beat k of a port is rom[k % 256] (seeds are multiples of 256), so the ROM's vectors
line up with the model's taps; every expected output is computed by the golden functions
from the beats that moved (and the `pos` the wrapper showed when they moved), and the
real vectors are compared with GoldenTransformer's taps as well."""

from __future__ import annotations

import numpy as np
import pytest

from magma_llama import paths
from magma_llama.golden import stages as G
from magma_llama.numerics.fixed import ACT_BITS, ACT_FRAC, ACT_MAX, ACT_MIN, I64
from magma_llama.numerics.tables import rope_tables
from magma_llama.stages.latency import ROPE_PIPELINE, SWIGLU_PIPELINE
from tests.streams_sim import Sim, check_credited_zip, check_protocol, once_per_test_run, source_prefix

CYCLES = 2000
# (seed, how often sources offer, how often sinks accept), out of 256; seed % 256 == 0
RUNS = [(0x1200, 128, 128), (0xBE00, 250, 250), (0x4000, 250, 40), (0x7A00, 60, 250), (0x5E00, 190, 110)]
DENSE_RUN = 1
HS = 8                      # head size of both models
NPOS = 4                    # greedy tokens run through the golden model (positions 0..3)
POS_HI = NPOS - 1
ROPE_SHAPES = {"ra": 512, "rb": 64, "rb_sin": 64, "rb_order": 64}
ROPE_MUTANTS = {"rb_sin": "sin_sign", "rb_order": "pair_order"}


def _layer0_taps(image):
    """Per position 0..NPOS-1 (greedy tokens from BOS): layer 0's q/k before RoPE (matvec of the
    xb_att tap, computed here), the q/k taps after RoPE, and the h1/h3/swiglu taps."""
    from magma_llama.golden.model import GoldenTransformer
    g = GoldenTransformer(image, detailed_taps=True)
    wq = G.MatVecWeights.from_quant(image.matrix("layer0.wq"))
    wk = G.MatVecWeights.from_quant(image.matrix("layer0.wk"))
    out, tok = [], 1
    for pos in range(NPOS):
        tok = int(np.argmax(g.forward(tok, pos)))
        t = {k: g.taps[f"layer0.{k}"].copy() for k in ("xb_att", "q", "k", "h1", "h3", "swiglu")}
        t["q_pre"], t["k_pre"] = G.matvec(wq, t["xb_att"]), G.matvec(wk, t["xb_att"])
        out.append(t)
    return out


def _images(workdir):
    """(stories260K image or None, gqa_unshared image): w16, as the decoder holds them."""
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.io.synthetic import SHAPES, write_synthetic
    from magma_llama.numerics.image import quantize_checkpoint
    from magma_llama.numerics.weights import weight_format
    fmt = weight_format("w16")
    model = paths.default_model()
    stories = quantize_checkpoint(read_checkpoint(str(model)), fmt) if model.exists() else None
    synth, _ = write_synthetic(str(workdir / "synthetic"), SHAPES["gqa_unshared"], 0, name="gqa_unshared")
    return stories, quantize_checkpoint(read_checkpoint(synth), fmt)


def _extremes(rng, n):
    """Q12.20 values over the whole int32 range: log-uniform magnitudes up to 2^31, both
    signs, with the two extremes and zero sprinkled in."""
    mag = np.floor(np.exp2(rng.uniform(8, 31, n))).astype(I64)
    x = np.where(rng.random(n) < 0.5, -mag, mag)
    pick = rng.random(n)
    x[pick < 0.08] = ACT_MAX
    x[(pick >= 0.08) & (pick < 0.16)] = ACT_MIN
    x[(pick >= 0.16) & (pick < 0.20)] = 0
    return np.clip(x, ACT_MIN, ACT_MAX)


def _silu_tail(rng, n):
    """h1 deep in silu's negative tail (-2048 .. -8) and around its minimum (-4 .. 0)."""
    x = -np.exp2(rng.uniform(3, 11, n))
    x[::3] = -rng.uniform(0, 4, x[::3].size)
    return np.floor(x * (1 << ACT_FRAC)).astype(I64)


# pairs at full scale: v0*s + v1*c (or v0*c - v1*s) exceeds the int32 range at most angles
SATURATING_HEAD = np.array([ACT_MAX, ACT_MAX, ACT_MIN, ACT_MIN, ACT_MAX, ACT_MIN, ACT_MIN, ACT_MAX], I64)


def _data(workdir):
    """The ROM of every source port (signed values, 256 each) and each rope wrapper's
    position per head (32 heads of 8)."""
    rng = np.random.default_rng(17)
    stories, synth = _images(workdir)
    ts = _layer0_taps(stories) if stories is not None else None
    tg = _layer0_taps(synth)
    roms, pos = {}, {}
    # SwiGLU: real vectors, then random pairs (a third of the h1s in silu's tail)
    ra_h1 = ts[POS_HI]["h1"] if ts else _extremes(rng, 172)
    ra_h3 = ts[POS_HI]["h3"] if ts else _extremes(rng, 172)
    tail = _silu_tail(rng, 28)
    roms["sa_H1"] = np.concatenate([ra_h1, tail, _extremes(rng, 56)])
    roms["sa_H3"] = np.concatenate([ra_h3, _extremes(rng, 84)])
    roms["sb_H1"] = np.concatenate([tg[0]["h1"], tg[POS_HI]["h1"], _silu_tail(rng, 20), _extremes(rng, 36)])
    roms["sb_H3"] = np.concatenate([tg[0]["h3"], tg[POS_HI]["h3"], _extremes(rng, 56)])
    # RoPE, stories260K: q, k at pos 0 and POS_HI (the taps), then the POS_HI vectors at other positions
    if ts:
        vecs = [ts[0]["q_pre"], ts[0]["k_pre"], ts[POS_HI]["q_pre"], ts[POS_HI]["k_pre"],
                ts[POS_HI]["q_pre"][:32], ts[POS_HI]["k_pre"]]
    else:
        vecs = [_extremes(rng, n) for n in (64, 32, 64, 32, 32, 32)]
    roms["ra_I"] = np.concatenate(vecs)
    pos["ra"] = [0] * 12 + [POS_HI] * 12 + [511] * 4 + [1, 100, 257, 510]
    # RoPE, gqa_unshared (6 q heads, 2 kv heads): taps at 0 and POS_HI, q at 63, random extremes
    roms["rb_I"] = np.concatenate([tg[0]["q_pre"], tg[0]["k_pre"], tg[POS_HI]["q_pre"], tg[POS_HI]["k_pre"],
                                   tg[POS_HI]["q_pre"], _extremes(rng, 64), SATURATING_HEAD, SATURATING_HEAD])
    pos["rb"] = [0] * 8 + [POS_HI] * 8 + [63] * 6 + [5, 63, 17, 1, 40, 8, 63, 2, 31, 50]
    for mut in ROPE_MUTANTS:
        roms[f"{mut}_I"], pos[mut] = roms["rb_I"], pos["rb"]
    roms["sa_floor_H1"], roms["sa_floor_H3"] = roms["sa_H1"], roms["sa_H3"]
    assert all(len(v) == 256 for v in roms.values()) and all(len(p) == 32 for p in pos.values())
    return roms, pos, ts, tg


def _rope_at(label, positions):
    """The controller side of a Rope: holds `pos` for a head, then steps to the next entry of
    `positions` (one per head of the ROM, wrapping); `pos` is an output, so it is logged."""
    import magma as m

    from magma_llama.stages import units
    from magma_llama.stages.rope import Rope
    from magma_llama.streams._base import ctrl_reg
    from magma_llama.streams.types import StreamIn, StreamOut, clog2
    seq_len = ROPE_SHAPES[label]
    ACT = m.Bits[ACT_BITS]
    rope = Rope(HS, seq_len, mutant=ROPE_MUTANTS.get(label))

    class RopeAt(m.Circuit):
        io = m.IO(I=StreamIn(ACT), O=StreamOut(ACT), pos=m.Out(m.UInt[clog2(seq_len)])) + m.ClockIO(has_reset=True)
        dut = rope(name="rope")
        elem = ctrl_reg(m.UInt[clog2(HS)], "elem")
        head = ctrl_reg(m.UInt[clog2(len(positions))], "head")
        fire = io.I.valid & dut.I.ready
        wrap = elem.O == HS - 1
        elem.I @= m.mux([elem.O, m.mux([elem.O + 1, m.uint(0, len(elem.O))], wrap)], fire)
        head.I @= m.mux([head.O, head.O + 1], fire & wrap)
        p = m.uint(m.bits(units.rom(positions, head.O, clog2(seq_len))))
        dut.pos @= p
        io.pos @= p
        dut.I.valid @= io.I.valid
        dut.I.data @= io.I.data
        io.I.ready @= dut.I.ready
        io.O.valid @= dut.O.valid
        io.O.data @= dut.O.data
        dut.O.ready @= io.O.ready
    RopeAt.name = f"RopeAt_{label}"
    return RopeAt


def _simulate(workdir):
    from magma_llama.stages.swiglu import SwiGlu
    from magma_llama.streams.testbench import make_bench, run_bench
    roms, pos, ts, tg = _data(workdir)

    def rom(label, port, widths, rng):
        return [int(v) & ((1 << ACT_BITS) - 1) for v in roms[f"{label}_{port}"]]

    duts = {"sa": SwiGlu(), "sb": SwiGlu(), "sa_floor": SwiGlu("floor_shift")}
    duts |= {k: _rope_at(k, pos[k]) for k in ROPE_SHAPES}
    bench, infos, extras = make_bench(duts, rom_fn=rom, name="FfnRopeBench")
    runs = run_bench(bench, infos, extras, RUNS, CYCLES, workdir, flags=("--output-split", "0"))
    return Sim(infos, extras, runs), pos, ts, tg


@pytest.fixture(scope="module")
def sim(request):
    return once_per_test_run(request, "ffn_rope_bench", _simulate)


def _signed(v, w=ACT_BITS):
    return v - (1 << w) if v >> (w - 1) else v


def _fires(run, key):
    return [bool(r[f"{key}_valid"] and r[f"{key}_ready"]) for r in run.rows]


# --- SwiGLU ---------------------------------------------------------------------------------
def _golden_swiglu(h1, h3):
    """golden swiglu of packed H1/H3 beats, packed."""
    out = G.swiglu(np.array([_signed(v) for v in h1], I64), np.array([_signed(v) for v in h3], I64))
    return [int(v) & ((1 << ACT_BITS) - 1) for v in out]


def _check_swiglu(s, label, run):
    """O = golden swiglu of the pairs that moved; the halves move together, and O.valid and
    both readys follow the credited pipeline (SWIGLU_PIPELINE's stages) cycle by cycle.
    Returns the O values."""
    check_protocol(s, label, run)
    outs = check_credited_zip(s, label, run, _golden_swiglu, len(SWIGLU_PIPELINE), ports=("H1", "H3", "O"))
    return np.array([_signed(v) for v in outs], I64)


def test_swiglu_bit_exact_under_stalls(sim):
    s = sim[0]
    total = 0
    for run in s.runs:
        for label in ("sa", "sb"):
            total += len(_check_swiglu(s, label, run))
    assert total > 2000, f"only {total} SwiGLU beats checked"


def test_swiglu_stories260k_taps(sim, stories260k):
    s, _, ts, _ = sim
    want = ts[POS_HI]["swiglu"]
    seen = 0
    for run in s.runs:
        outs = _check_swiglu(s, "sa", run)
        for base in range(0, len(outs) - want.size + 1, 256):
            assert np.array_equal(outs[base:base + want.size], want), "sa: not the layer 0 swiglu tap"
            seen += 1
    assert seen >= 5


def test_swiglu_gqa_unshared_taps(sim):
    s, _, _, tg = sim
    seen = 0
    for run in s.runs:
        outs = _check_swiglu(s, "sb", run)
        for base in range(0, len(outs) - 200 + 1, 256):
            assert np.array_equal(outs[base:base + 100], tg[0]["swiglu"])
            assert np.array_equal(outs[base + 100:base + 200], tg[POS_HI]["swiglu"])
            seen += 1
    assert seen >= 5


def test_swiglu_data_reach_saturation_and_silu_tail(sim):
    """The random pairs saturate at both ends and drive h1 deep into silu's tail (else weak)."""
    s = sim[0]
    outs, tail = [], 0
    for run in s.runs:
        o = _check_swiglu(s, "sa", run)
        h1 = [_signed(v) for v in source_prefix(s, run, "sa_H1")][:len(o)]
        outs += o.tolist()
        tail += sum(1 for a in h1 if a < -(8 << ACT_FRAC))
    assert ACT_MAX in outs and ACT_MIN in outs
    assert tail > 50


# --- RoPE -----------------------------------------------------------------------------------
def _check_rope(s, label, run):
    """O = golden rope of each head that moved, at the `pos` shown while it moved; I.ready and
    O.valid follow the v0 / O / spare registers exactly.  Returns (outs, heads' positions)."""
    check_protocol(s, label, run)
    seq_len = ROPE_SHAPES[label]
    cos, sin = rope_tables(HS, seq_len)
    ins = np.array([_signed(v) for v in source_prefix(s, run, f"{label}_I")], I64)
    fi, fo = _fires(run, f"{label}_I"), _fires(run, f"{label}_O")
    pos_at = [r[f"{label}_pos"] for r, f in zip(run.rows, fi) if f]
    outs = np.array([_signed(v) for v in run.transfers(f"{label}_O")], I64)
    held = 3 + 2 * len(ROPE_PIPELINE)           # v0, O, the spare and a pair in every stage
    assert 0 <= len(ins) - len(outs) <= held, f"{label}: {len(ins) - len(outs)} elements held"
    heads = -(-len(outs) // HS)
    want, head_pos = [], []
    for h in range(heads):
        p = set(pos_at[h * HS:(h + 1) * HS])
        assert len(p) == 1, f"{label}: pos changed within head {h}"
        head_pos.append(p.pop())
        vec = np.zeros(HS, I64)
        got = ins[h * HS:(h + 1) * HS]
        vec[:got.size] = got
        want.append(G.rope(vec, head_pos[-1], HS, cos, sin))
    want = np.concatenate(want)[:len(outs)] if want else np.zeros(0, I64)
    bad = np.flatnonzero(outs != want)
    assert bad.size == 0, f"{label} seed {run.seed:#x}: element {bad[:1]} gave {outs[bad[:1]]}, golden {want[bad[:1]]}"
    # the stage's cycle model: a pair (v0 held, v1 taken) enters the pipeline's first stage when
    # it is free; each stage takes the pair before it when empty or moving on; the last pair
    # leaves into O (out0) and the spare (out1) when the spare is empty and O is free
    taken = 0
    stages = [False] * len(ROPE_PIPELINE)
    ov = sv = False
    for t, r in enumerate(run.rows):
        k = f"{label}_"
        o_free = not ov or r[k + "O_ready"]
        free = [not sv and o_free]
        for v in reversed(stages):
            free.insert(0, not v or free[0])
        assert r[k + "O_valid"] == ov, f"{label}: O.valid wrong at cycle {t}"
        even = taken % 2 == 0
        assert r[k + "I_ready"] == (even or free[0]), f"{label}: I.ready wrong at cycle {t}"
        moves = [bool(fi[t]) and not even] + [v and f for v, f in zip(stages, free[1:])]
        stages = [moves[i] or (v and not free[i + 1]) for i, v in enumerate(stages)]
        leave, spare_moves = moves[-1], sv and o_free
        ov, sv = leave or spare_moves or (ov and not r[k + "O_ready"]), leave or (sv and not o_free)
        taken += fi[t]
    return outs, head_pos


def test_rope_bit_exact_under_stalls(sim):
    s, pos = sim[0], sim[1]
    total, positions = 0, set()
    for run in s.runs:
        for label in ("ra", "rb"):
            outs, hp = _check_rope(s, label, run)
            assert hp == [pos[label][h % 32] for h in range(len(hp))]
            total += len(outs)
            positions |= {(label, p) for p in hp}
    assert total > 2000, f"only {total} RoPE elements checked"
    assert {("ra", 0), ("ra", 511), ("rb", 0), ("rb", 63)} <= positions


def _check_taps(outs, blocks):
    """outs[256 j + off : ...] == tap for every whole ROM pass j; returns the passes seen."""
    seen = 0
    for base in range(0, len(outs) - 256 + 1, 256):
        off = 0
        for tap in blocks:
            assert np.array_equal(outs[base + off:base + off + tap.size], tap), "not the golden model's tap"
            off += tap.size
        seen += 1
    return seen


def test_rope_stories260k_taps(sim, stories260k):
    s, _, ts, _ = sim
    blocks = [ts[0]["q"], ts[0]["k"], ts[POS_HI]["q"], ts[POS_HI]["k"]]
    assert sum(_check_taps(_check_rope(s, "ra", run)[0], blocks) for run in s.runs) >= 4


def test_rope_gqa_unshared_taps(sim):
    s, _, _, tg = sim
    blocks = [tg[0]["q"], tg[0]["k"], tg[POS_HI]["q"], tg[POS_HI]["k"]]
    assert sum(_check_taps(_check_rope(s, "rb", run)[0], blocks) for run in s.runs) >= 4


def test_rope_data_saturate(sim):
    s = sim[0]
    outs = np.concatenate([_check_rope(s, "rb", run)[0] for run in s.runs])
    assert (outs == ACT_MAX).any() and (outs == ACT_MIN).any()
    assert (np.abs(outs) < (8 << ACT_FRAC)).sum() > 500


@pytest.mark.parametrize("label", list(ROPE_MUTANTS))
def test_rope_mutant_caught(sim, label):
    s = sim[0]
    with pytest.raises(AssertionError, match="golden"):
        for run in s.runs:
            _check_rope(s, label, run)


def test_swiglu_mutant_caught(sim):
    s = sim[0]
    with pytest.raises(AssertionError, match="golden"):
        for run in s.runs:
            _check_swiglu(s, "sa_floor", run)


def test_full_rate_when_streams_are_dense(sim):
    """One beat per cycle through each stage when sources and sinks are ~98% ready."""
    s = sim[0]
    run = s.runs[DENSE_RUN]
    for label in ("sa", "sb", "ra", "rb"):
        rate = len(run.transfers(f"{label}_O")) / len(run.rows)
        assert rate > 0.9, f"{label}: {rate:.3f} beats/cycle"
