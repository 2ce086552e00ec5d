"""RMSNorm, Residual and Embed under random stalls, bit-exact against golden.stages.

One Verilator build holds six devices (each port fed or drained by the random-stall
sources/sinks of streams/testbench.py):
- `n64`: RmsNorm(64) on stories260K layer 0 (embed tap with rms_att -> xb_att, the
  attention residual with rms_ffn -> xb_ffn), a vector with int32-extreme values under a
  large gain (outputs saturate), and a near-zero vector (sum of squares 0: eps decides);
- `nmut`: RmsNorm(64, mutant="no_eps") on the same beats: the checks must reject it;
- `n48`: RmsNorm(48) on the synthetic gqa_unshared model (w8 image) plus random vectors;
- `n64w`: RmsNorm(64, lanes=2), two elements a G and an O beat, on n64's vectors;
- `res`: Residual on stories260K residual pairs and saturating random pairs;
- `e64`: Embed(16, 16, 64), stories260K embedding rows; `e48`: Embed(32, 8, 48), synthetic
  rows (two W beats a row, the second half padding).
Source beat k of a port is rom[(k + seed) % 256]; seeds are 0 or 192 modulo 256, so the
first vectors of a run start on a real vector of the ROM.  Expected outputs are computed
by the golden functions from the beats that moved (a G or W beat not yet moved is read
from its ROM entry); outputs of vectors that are real data are also compared with the
golden model's taps."""

from __future__ import annotations

import numpy as np
import pytest

from magma_llama import paths
from magma_llama.golden import stages as S
from magma_llama.numerics.fixed import ACT_BITS, ACT_MAX, ACT_MIN, I64, from_float
from magma_llama.stages.latency import EMBED_LATENCY
from magma_llama.numerics.weights import (EXP_BITS, GAIN_BITS, QuantMatrix, check_gain_bound, quantize_matrix,
                                          weight_beats)
from tests.streams_sim import Sim, check_protocol, check_zip_with, fire_cycles, once_per_test_run, source_prefix
from tests.test_stage_matvec import _pack, _unpack   # the W beat packing of the bench

CYCLES = 2000
# (seed, how often sources offer, how often sinks accept), out of 256; seed % 256 in {0, 192}
RUNS = [(0x1200, 128, 128), (0xBE00, 250, 250), (0x00C0, 250, 40), (0x7AC0, 60, 250), (0x5E00, 190, 110)]
DENSE_RUN = 1
NORMS = {"n64": 64, "nmut": 64, "n48": 48, "n64w": 64}
LANES = {"n64w": 2}         # RmsNorm lanes (elements per G and O beat); 1 if not listed
EMBEDS = {"e64": (16, 16, 64), "e48": (32, 8, 48)}


# --- data -------------------------------------------------------------------------------------
def _image(model: str, fmt: str):
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.numerics.image import quantize_checkpoint
    from magma_llama.numerics.weights import weight_format
    return quantize_checkpoint(read_checkpoint(model), weight_format(fmt))


def _taps(img, tokens):
    """Per position, the golden model's detailed taps and the residual addends of layer 0."""
    from magma_llama.golden.model import GoldenTransformer
    g = GoldenTransformer(img, detailed_taps=True)
    out = []
    for pos, tok in enumerate(tokens):
        g.forward(tok, pos)
        t = dict(g.taps)
        w = g.layers[0]
        t["d_att"] = S.matvec(w["wo"], t["layer0.att"])
        t["d_ffn"] = S.matvec(w["w2"], t["layer0.swiglu"])
        out.append(t)
    return g, out


def _gain(img, name):
    return S.GainVector.from_quant(img.matrix(name))


def _random_gain(rng, dim, scale):
    q = quantize_matrix((rng.standard_normal(dim) * scale).astype(np.float32), GAIN_BITS, 32)
    assert check_gain_bound(q) is None
    return S.GainVector.from_quant(q)


def _large(rng, dim):
    """Q12.20 values of every size up to the int32 extremes."""
    x = from_float(rng.standard_normal(dim) * np.exp2(rng.integers(-4, 12, dim)))
    ends = rng.random(dim) < 0.2
    x[ends] = rng.choice([ACT_MIN, ACT_MAX], ends.sum())
    return x


def _near_zero(rng, dim):
    """|x| < 181 LSB, so every rshr(x^2, 16) is 0 and the sum of squares is dim*eps alone."""
    return rng.integers(-180, 181, dim).astype(I64)


def _word(v, bits=ACT_BITS):
    return int(v) & ((1 << bits) - 1)


def _gain_word(mant, exp):
    return (int(mant) & ((1 << GAIN_BITS) - 1)) | ((int(exp) & ((1 << EXP_BITS) - 1)) << GAIN_BITS)


def _signed(v, w=ACT_BITS):
    return v - (1 << w) if v >> (w - 1) else v


def _fill(vectors, rng, n=256):
    """Concatenate vectors into a 256-entry ROM, random words after them."""
    flat = [int(v) for vec in vectors for v in vec]
    return flat + [int(v) for v in from_float(rng.standard_normal(n - len(flat)))]


def _data(workdir):
    """{(label, port): rom} and {label: {rom start: (expected vector, what)}} of real vectors."""
    from magma_llama.io.synthetic import SHAPES, write_synthetic
    rng = np.random.default_rng(11)
    roms, real = {}, {}
    model = paths.default_model()
    if not model.exists():   # no checkpoint: a stories260K-shaped stand-in keeps the build; those tests skip
        model = write_synthetic(str(workdir / "standin"), SHAPES["stories260K"], 4, name="s260")[0]
    syn_model, _ = write_synthetic(str(workdir / "synthetic"), SHAPES["gqa_unshared"], 3, name="gqa")

    # stories260K, w16: dim 64
    img = _image(str(model), "w16")
    _, (t0, t1) = _taps(img, [1, 300])
    att, ffn = _gain(img, "layer0.rms_att"), _gain(img, "layer0.rms_ffn")
    big = _random_gain(rng, 64, 3000.0)
    xs = [t0["embed"], t1["layer0.attn"], _large(rng, 64), _near_zero(rng, 64)]
    gs = [att, ffn, big, att]
    roms["n64", "X"] = [_word(v) for v in _fill(xs, rng)]
    roms["n64", "G"] = [_gain_word(m_, e_) for gv in gs for m_, e_ in zip(gv.mant, gv.exp)]
    real["n64"] = {0: (t0["layer0.xb_att"], "xb_att"), 64: (t1["layer0.xb_ffn"], "xb_ffn")}
    roms["nmut", "X"], roms["nmut", "G"] = roms["n64", "X"], roms["n64", "G"]
    real["nmut"] = {}
    # the wide norm: G beat b holds gain entries 2b, 2b + 1 (mod 256) of the same list, so with
    # a seed of 0 mod 256 vector v's gains are n64's (with 192 they are not: no real check then)
    n = LANES["n64w"]
    roms["n64w", "X"] = roms["n64", "X"]
    roms["n64w", "G"] = [sum(roms["n64", "G"][(n * b + j) % 256] << (j * (GAIN_BITS + EXP_BITS)) for j in range(n))
                         for b in range(256)]
    real["n64w"] = real["n64"]

    a = [t0["embed"], t0["layer0.attn"], _large(rng, 64), t1["embed"]]
    b = [t0["d_att"], t0["d_ffn"], _large(rng, 64), t1["d_att"]]
    roms["res", "A"] = [_word(v) for v in _fill(a, rng)]
    roms["res", "B"] = [_word(v) for v in _fill(b, rng)]
    real["res"] = ({0: (t0["layer0.attn"], "attn"), 64: (t0["layer0.ffn"], "ffn"), 192: (t1["layer0.attn"], "attn")})

    emb = img.matrix(img.embedding_section)
    toks = [1, 300] + [int(t) for t in rng.choice(np.arange(2, emb.rows), 62, replace=False)]
    roms["e64", "W"], real["e64"] = _embed_rom(emb, toks, *EMBEDS["e64"][:2])
    # the two forwarded tokens: the model's own embed taps
    real["e64"][0], real["e64"][4] = (t0["embed"], "embed tap"), (t1["embed"], "embed tap")

    # synthetic gqa_unshared, w8 image: dim 48
    simg = _image(syn_model, "w8")
    _, (s0, s1) = _taps(simg, [1, 7])
    satt, sffn = _gain(simg, "layer0.rms_att"), _gain(simg, "layer0.rms_ffn")
    xs = [s0["embed"], s0["layer0.attn"], s1["embed"], from_float(rng.standard_normal(48) * 4), _large(rng, 48)]
    gs = [satt, sffn, satt, _random_gain(rng, 48, 1.0), _random_gain(rng, 48, 3000.0)]
    roms["n48", "X"] = [_word(v) for v in _fill(xs, rng)]
    gw = [_gain_word(m_, e_) for gv in gs for m_, e_ in zip(gv.mant, gv.exp)]
    tail = _random_gain(rng, 16, 2.0)
    roms["n48", "G"] = gw + [_gain_word(m_, e_) for m_, e_ in zip(tail.mant, tail.exp)]
    real["n48"] = {0: (s0["layer0.xb_att"], "xb_att"), 48: (s0["layer0.xb_ffn"], "xb_ffn"),
                   96: (s1["layer0.xb_att"], "xb_att")}
    semb = simg.matrix(simg.embedding_section)
    roms["e48", "W"], real["e48"] = _embed_rom(semb, list(range(128)), *EMBEDS["e48"][:2])
    return roms, real


def _embed_rom(q, tokens, lanes, bits):
    """The W beats of the rows `tokens` (weight_beats), and per row its golden embedding."""
    sub = QuantMatrix(q.mant[tokens], q.exp[tokens], q.group)
    mant, exp = weight_beats(sub, lanes)
    nb = mant.shape[1]
    beats = [_pack(mm, ee, bits) for mm, ee in zip(mant.reshape(-1, lanes), exp.reshape(-1, lanes))]
    assert len(beats) <= 256
    beats = (beats * (256 // len(beats) + 1))[:256]
    return beats, {r * nb: (S.embed(q, t), f"token {t}") for r, t in enumerate(tokens) if (r + 1) * nb <= 256}


def _simulate(workdir):
    from magma_llama.stages.embed import Embed
    from magma_llama.stages.residual import Residual
    from magma_llama.stages.rmsnorm import RmsNorm
    from magma_llama.streams.testbench import make_bench, run_bench
    roms, real = _data(workdir)
    duts = {"n64": RmsNorm(64), "nmut": RmsNorm(64, mutant="no_eps"), "n48": RmsNorm(48),
            "n64w": RmsNorm(64, lanes=LANES["n64w"]), "res": Residual(),
            **{k: Embed(*v) for k, v in EMBEDS.items()}}
    bench, infos, extras = make_bench(duts, rom_fn=lambda label, port, widths, rng: roms[label, port],
                                      name="NormBench")
    runs = run_bench(bench, infos, extras, RUNS, CYCLES, workdir, flags=("--output-split", "0"),
                     unprinted=tuple(f"{k}_W" for k in EMBEDS))
    return Sim(infos, extras, runs), real


@pytest.fixture(scope="module")
def sim(request):
    return once_per_test_run(request, "norm_bench", _simulate)


# --- checks -----------------------------------------------------------------------------------
def _start(run, k):
    return (k + run.seed) % 256


def _is_real(taps, start, got, label) -> int:
    """1 if the complete vector `got` began at a real vector's ROM position (then it must
    equal that vector's golden-model tap), else 0."""
    if start not in taps:
        return 0
    tap, what = taps[start]
    assert got == tap.tolist(), f"{label}: vector at ROM {start} is not the {what} tap"
    return 1


def _golden_residual(a, b):
    """golden residual of packed A/B beats, packed."""
    out = S.residual(np.array([_signed(v) for v in a], I64), np.array([_signed(v) for v in b], I64))
    return [int(v) & ((1 << ACT_BITS) - 1) for v in out]


def norm_vectors(sim, run, label):
    """[(rom start, x, output elements, golden vector)] per vector with outputs, and the
    sequencing checks: G is taken only after the vector's last X beat, one G beat per output
    beat (of `lanes` elements each)."""
    dim, n = NORMS[label], LANES.get(label, 1)
    beats = dim // n
    xs = [_signed(v) for v in source_prefix(sim, run, f"{label}_X")]
    source_prefix(sim, run, f"{label}_G")
    ginfo, oinfo = sim.infos[f"{label}_G"], sim.infos[f"{label}_O"]
    os_ = [_signed(v) for w in run.transfers(f"{label}_O") for v in oinfo.split(w)]
    xf, gf = fire_cycles(run, f"{label}_X"), fire_cycles(run, f"{label}_G")
    assert len(os_) // n <= len(gf) <= len(os_) // n + 1, f"{label}: {len(gf)} G beats for {len(os_)} outputs"
    for k, t in enumerate(gf):
        last_x = (k // beats + 1) * dim - 1
        assert last_x < len(xf) and xf[last_x] < t, f"{label}: G beat {k} taken before its vector loaded"
    for k in range(dim, len(xf), dim):
        assert k // dim * beats <= len(gf) and gf[k // dim * beats - 1] < xf[k], \
            f"{label}: vector {k // dim} loaded before the last one left"
    out = []
    consts = S.RmsNormConsts.make(dim)
    for v in range(-(-len(os_) // dim)):
        x = np.array(xs[v * dim:(v + 1) * dim], I64)
        leaves = [f for k in range(v * beats, (v + 1) * beats) for f in ginfo.split(ginfo.beat(k, run.seed))]
        gain = S.GainVector(np.array([_signed(mm, GAIN_BITS) for mm in leaves[0::2]], I64),
                            np.array([_signed(ee, EXP_BITS) for ee in leaves[1::2]], I64))
        want = S.rmsnorm(x, gain, consts)
        out.append((_start(run, v * dim), x, os_[v * dim:(v + 1) * dim], want))
    return out


def _check_norm(sim, real, label):
    """Every output element equals golden rmsnorm of the beats that moved; returns counts.
    A wide norm's real vectors are checked in runs whose seed is 0 mod 256 (see _data)."""
    n = {"vectors": 0, "beats": 0, "real": 0, "eps": 0}
    consts = S.RmsNormConsts.make(NORMS[label])
    for run in sim.runs:
        check_protocol(sim, label, run)
        taps = real[label] if label not in LANES or run.seed % 256 == 0 else {}
        for start, x, got, want in norm_vectors(sim, run, label):
            assert got == want[:len(got)].tolist(), f"{label} seed {run.seed:#x}: vector at ROM {start} differs"
            n["beats"] += len(got)
            if len(got) == len(want):
                n["vectors"] += 1
                n["eps"] += S.sum_of_squares(x) < consts.eps_term
                n["real"] += _is_real(taps, start, got, label)
    return n


def test_rmsnorm_stories260k_bit_exact(sim, stories260k):
    s, real = sim
    n = _check_norm(s, real, "n64")
    assert n["vectors"] >= 20 and n["real"] >= 8 and n["eps"] >= 3, n


def test_rmsnorm_with_lanes_bit_exact(sim, stories260k):
    s, real = sim
    n = _check_norm(s, real, "n64w")
    assert n["vectors"] >= 30 and n["real"] >= 6 and n["eps"] >= 3, n


def test_rmsnorm_synthetic_gqa_bit_exact(sim):
    s, real = sim
    n = _check_norm(s, real, "n48")
    assert n["vectors"] >= 20 and n["real"] >= 4, n


def test_rmsnorm_saturates_both_ways(sim):
    s, _ = sim
    outs = {_signed(v) for run in s.runs for label in ("n64", "n48", "n64w")
            for w in run.transfers(f"{label}_O") for v in s.infos[f"{label}_O"].split(w)}
    assert ACT_MIN in outs and ACT_MAX in outs


def test_rmsnorm_mutant_without_eps_is_caught(sim):
    """The same beats through RmsNorm(mutant="no_eps"): the golden comparison rejects it in
    every run (the near-zero vector alone would; ordinary vectors differ as well)."""
    s, _ = sim
    for run in s.runs:
        bad = [start for start, _, got, want in norm_vectors(s, run, "nmut") if got != want[:len(got)].tolist()]
        assert bad, f"no_eps mutant not caught in run seed {run.seed:#x}"


def test_rmsnorm_one_beat_per_cycle(sim):
    """While normalising, G is taken whenever O is free (no bubble), and X is refused."""
    s, _ = sim
    for label in ("n64", "n48", "n64w"):
        dim, beats = NORMS[label], NORMS[label] // LANES.get(label, 1)
        for run in s.runs:
            xf, gf = fire_cycles(run, f"{label}_X"), fire_cycles(run, f"{label}_G")
            for v in range(len(gf) // beats):
                loaded, end = xf[(v + 1) * dim - 1], gf[(v + 1) * beats - 1]
                for t in range(loaded + 1, end + 1):
                    r = run.rows[t]
                    o_free = not r[f"{label}_O_valid"] or r[f"{label}_O_ready"]
                    want = int(o_free) if t >= loaded + 2 else 0      # one cycle to form the scale
                    assert r[f"{label}_G_ready"] == want, f"{label}: G.ready wrong at {t}"
                    assert not r[f"{label}_X_ready"], f"{label}: X.ready while normalising at {t}"


def test_residual_bit_exact(sim, stories260k):
    s, real = sim
    beats = nreal = 0
    for run in s.runs:
        check_protocol(s, "res", run)
        o = [_signed(v) for v in check_zip_with(s, "res", run, _golden_residual)]
        beats += len(o)
        for v in range(len(o) // 64):
            nreal += _is_real(real["res"], _start(run, 64 * v), o[64 * v:64 * v + 64], "res")
    outs = {_signed(v) for run in s.runs for v in run.transfers("res_O")}
    assert beats > 2000 and nreal >= 8 and ACT_MIN in outs and ACT_MAX in outs, (beats, nreal)


def _check_embed(sim, real, label):
    lanes, bits, dim = EMBEDS[label]
    nb = -(-dim // lanes)
    info = sim.infos[f"{label}_W"]
    n = {"rows": 0, "beats": 0, "real": 0}
    for run in sim.runs:
        check_protocol(sim, label, run)
        nw = len(fire_cycles(run, f"{label}_W"))
        o = [_signed(v) for v in run.transfers(f"{label}_O")]
        rows_out = -(-len(o) // dim)
        # W beat k is taken only once beat k-1's last element has stepped out into the pipeline,
        # which holds EMBED_LATENCY elements (its stages and O)
        elems = [0] + list(np.cumsum([min(lanes, dim - (k % nb) * lanes) for k in range(nw)]))
        assert len(o) <= elems[nw] and len(o) + EMBED_LATENCY >= elems[max(nw - 1, 0)], \
            f"{label}: {nw} W beats, {len(o)} O beats"
        for r in range(rows_out):
            beats = [_unpack(info.beat(k, run.seed), lanes, bits) for k in range(r * nb, (r + 1) * nb)]
            mant = np.array([x for mm, _ in beats for x in mm], I64)[None, :dim]
            exp = np.array([x for _, ee in beats for x in ee], I64)[None, :dim]
            want = S.embed(QuantMatrix(mant, exp, 1), 0).tolist()
            got = o[r * dim:(r + 1) * dim]
            assert got == want[:len(got)], f"{label} seed {run.seed:#x}: row {r} differs"
            n["beats"] += len(got)
            if len(got) == dim:
                n["rows"] += 1
                n["real"] += _is_real(real[label], _start(run, r * nb), got, label)
    return n


def test_embed_stories260k_bit_exact(sim, stories260k):
    s, real = sim
    n = _check_embed(s, real, "e64")
    assert n["rows"] >= 40 and n["real"] >= 40, n


def test_embed_synthetic_padded_bit_exact(sim):
    s, real = sim
    n = _check_embed(s, real, "e48")
    assert n["rows"] >= 40 and n["real"] >= 40, n


def test_embed_and_residual_one_beat_per_cycle(sim):
    """With sources and sinks ~98% ready, O moves in nearly every cycle (one O beat per
    element, L per W beat; the residual one pair a cycle)."""
    s, _ = sim
    run = s.runs[DENSE_RUN]
    for label in ("e64", "e48", "res"):
        rate = len(run.transfers(f"{label}_O")) / len(run.rows)
        assert rate > 0.9, f"{label}: {rate:.3f} beats/cycle"
