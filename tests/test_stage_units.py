"""The shared function units (stages/units.py), bit-exact against numerics.

The pipelined forms (a unit given a `stages.pipeline.Cuts`: exp_neg, recip, rsqrt and silu, their
registers loading every cycle) are on the same bench: each output is compared with numpy of
the operands its pipeline's length of cycles before (latency.EXP_NEG/RECIP/RSQRT/SILU_PIPELINE).

One Verilator build of a wrapper that feeds every unit from shared operands
(a: 64 bits, b: 32 bits, s: 8 bits).  The operands come either from a 64-bit
xorshift register (a = state >> state[0:6], arithmetic: log-uniform magnitudes
of both signs; b, s from the next state) or, with `poke` high, from input ports
(the edge cases: 0, +-1, powers of two and their neighbours, limits, LUT and
normalisation boundaries).  Every cycle the operands and every unit's output are
printed, and each output is compared with its numpy counterpart on the same
operands.  A copy of exp_neg elaborated with one exp2_lut entry off by one must
mismatch, showing the comparison can fail.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from magma_llama.numerics import fixed as F
from magma_llama.numerics import functions as FN
from magma_llama.numerics import tables as T
from tests.streams_sim import once_per_test_run

I64 = np.int64
RANDOM_CYCLES = 6000
SEEDS = (0x9E3779B97F4A7C15, 0x0123456789ABCDEF)
RECIP_FRAC, RSQRT_FRAC, RSQRT_FRAC_ODD = 20, 40, 7
RSHR_CONST = (1, 30)
MUL_CONST_SHIFT = 46
ROPE_SHAPE = (8, 512)          # stories260K head size and seq_len: a 2048-entry table
PIPE_PAD = 48                  # cycles of the longest pipelined unit on the bench (silu: 45), and some
MUTANT_LUT_ENTRY = 77          # exp2_lut entry the mutant copy of exp_neg has off by one

M64 = (1 << 64) - 1


def _signed(v, w):
    v &= (1 << w) - 1
    return v - (1 << w) if v >> (w - 1) else v


@contextmanager
def _mutated_exp_lut():
    """units.T with exp2_lut[MUTANT_LUT_ENTRY] + 1 (for elaborating the mutant only)."""
    from magma_llama.stages import units

    class Shim:
        def __getattr__(self, name):
            return getattr(T, name)

        @staticmethod
        def exp2_lut(bits=T.EXP_LUT_BITS):
            t = T.exp2_lut(bits).copy()
            t[MUTANT_LUT_ENTRY] += 1
            return t
    units.T = Shim()
    try:
        yield
    finally:
        units.T = T


# operand derivations shared by the wrapper (hardware) and `_inputs` (Python)
def _rope_cos():
    return T.rope_tables(*ROPE_SHAPE)[0].ravel()


def _bench():
    import magma as m
    from magma_llama.stages import latency as L
    from magma_llama.stages import units as U
    from magma_llama.stages.pipeline import Cuts

    outs = {
        "rshr_rt": m.SInt[64], "rshr_c1": m.SInt[64], "rshr_c30": m.SInt[64], "sat": m.SInt[32],
        "shift_sat": m.SInt[32], "shift_each": m.SInt[64], "apply_scale": m.SInt[32],
        "mul_rt": m.SInt[64], "mul_c": m.SInt[64], "exp_neg": m.UInt[31], "exp_neg_mut": m.UInt[31],
        "recip_m": m.UInt[31], "recip_e": m.SInt[8], "rsqrt_m": m.UInt[31], "rsqrt_e": m.SInt[8],
        "rsqrt7_m": m.UInt[31], "rsqrt7_e": m.SInt[8], "sigmoid": m.UInt[31], "silu": m.SInt[32],
        "smul_m": m.UInt[31], "smul_e": m.SInt[8], "rom": m.SInt[32],
        "exp_neg_p": m.UInt[31], "recip_p_m": m.UInt[31], "recip_p_e": m.SInt[8], "silu_p": m.SInt[32],
        "rsqrt_p_m": m.UInt[31], "rsqrt_p_e": m.SInt[8],
    }

    class UnitsBench(m.Circuit):
        io = m.IO(seed=m.In(m.Bits[64]), load=m.In(m.Bit), poke=m.In(m.Bit), A=m.In(m.Bits[64]),
                  B=m.In(m.Bits[32]), S=m.In(m.Bits[8]), a=m.Out(m.Bits[64]), b=m.Out(m.Bits[32]),
                  s=m.Out(m.Bits[8]), **{k: m.Out(t) for k, t in outs.items()}) + m.ClockIO()
        st = m.Register(m.Bits[64])(name="state")

        def xs(v):
            v = v ^ (v << 13)
            v = v ^ (v >> 7)
            return v ^ (v << 17)
        nxt = xs(st.O)
        st.I @= m.mux([nxt, io.seed], io.load)
        ra = m.sint(st.O) >> m.sint(m.zext_to(m.uint(st.O[:6]), 64))
        a = m.mux([m.bits(ra), io.A], io.poke)
        b = m.mux([nxt[:32], io.B], io.poke)
        s = m.mux([nxt[32:40], io.S], io.poke)
        io.a @= a
        io.b @= b
        io.s @= s
        sa = m.sint(a)
        x32 = m.sint(a[:32])
        k7 = m.sint(s[:7])
        u62 = m.zext_to(m.uint(a[:62]), 64)
        io.rshr_rt @= U.rshr(sa, m.uint(s))
        io.rshr_c1 @= U.rshr(sa, RSHR_CONST[0])
        io.rshr_c30 @= U.rshr(sa, RSHR_CONST[1])
        io.sat @= U.sat(sa, 32)
        io.shift_sat @= U.shift_sat(sa, k7, 32)
        io.shift_each @= U.shift_each(sa, k7)
        io.apply_scale @= U.apply_scale(x32, m.uint(b[:31]), k7, 32)
        io.mul_rt @= U.mul_rshr_wide(sa, m.uint(b[:31]), m.uint(s[:7]))
        io.mul_c @= U.mul_rshr_wide(sa, m.uint(b[:31]), MUL_CONST_SHIFT)
        io.exp_neg @= U.exp_neg(x32)
        with _mutated_exp_lut():
            io.exp_neg_mut @= U.exp_neg(x32)
        rm, re_ = U.recip(u62, RECIP_FRAC)
        io.recip_m @= rm
        io.recip_e @= re_
        qm, qe = U.rsqrt(u62, RSQRT_FRAC)
        io.rsqrt_m @= qm
        io.rsqrt_e @= qe
        qm7, qe7 = U.rsqrt(u62, RSQRT_FRAC_ODD)
        io.rsqrt7_m @= qm7
        io.rsqrt7_e @= qe7
        io.sigmoid @= U.sigmoid(x32)
        io.silu @= U.silu(x32)
        sm, se = U.scale_mul((m.uint(b[:31]) | m.uint(1 << 30, 31), m.sint(s[:6])),
                             (m.uint(a[:31]) | m.uint(1 << 30, 31), m.sint(a[40:46])))
        io.smul_m @= sm
        io.smul_e @= se
        io.rom @= U.rom(_rope_cos(), a[:11], 32, signed=True)
        # the pipelined forms: the same functions with their registers at the table's cuts
        cut = Cuts(L.EXP_NEG_PIPELINE, prefix="pe_")
        io.exp_neg_p @= U.exp_neg(x32, cut=cut)
        cut.done()
        cut = Cuts(L.RECIP_PIPELINE, prefix="pr_")
        rm, re_ = U.recip(u62, RECIP_FRAC, cut=cut)
        cut.done()
        io.recip_p_m @= rm
        io.recip_p_e @= re_
        cut = Cuts(L.RSQRT_PIPELINE, prefix="pq_")
        qm, qe = U.rsqrt(u62, RSQRT_FRAC, cut=cut)
        cut.done()
        io.rsqrt_p_m @= qm
        io.rsqrt_p_e @= qe
        cut = Cuts(L.SILU_PIPELINE, prefix="ps_")
        io.silu_p @= U.silu(x32, cut=cut)
        cut.done()

    return UnitsBench, ["a", "b", "s", *outs]


def edge_operands():
    """(a, b, s) edge cases, a as a 64-bit pattern."""
    rng = np.random.default_rng(3)
    avals = {0, 1, M64, (1 << 63), (1 << 63) - 1, 1 << 62, (1 << 62) - 1, (1 << 62) + 1}
    for k in range(64):
        for d in (-1, 0, 1):
            avals.add(((1 << k) + d) & M64)
            avals.add((-(1 << k) + d) & M64)
    # exp_neg: x whose y = x log2(e) lies at or near an integer or a LUT step
    for j in (0, 1, 2, 5, 21, 22, 31, 32, 33, 62, 63):
        for i in (0, 1, 127, 255):
            y = -(j << 20) - (i << 12)
            for d in (-1, 0, 1):
                avals.add(int(math.floor(y * (1 << 30) / T.LOG2E_Q30)) + d & M64)
    # exp_neg with n = -1 (a final shift by one) at the start and the middle of every LUT cell
    for i in range(1 << T.EXP_LUT_BITS):
        for r in (0, 1 << 11):
            avals.add(int(math.floor(-((i << 12) + r) * (1 << 30) / T.LOG2E_Q30)) & M64)
    # recip/rsqrt: mantissas at LUT cell edges, and values that round up to the next power
    for k in (0, 1, 20, 30, 31, 32, 33, 40, 61):
        for i in (0, 1, 128, 255):
            base = (1 << k) + ((i << k) >> 8)
            for d in (-1, 0, 1):
                if 1 <= base + d <= 1 << 62:
                    avals.add(base + d)
        avals.add(((1 << (k + 31)) - 1) if k + 31 <= 62 else (1 << 62) - 1)
    # sigmoid/silu around 0 and the int32 limits
    for v in (-(1 << 31), (1 << 31) - 1, -(1 << 31) + 1, 1 << 20, -(1 << 20), 3, -3):
        avals.add(v & M64)
    out = []
    svals = [0, 1, 2, 30, 31, 32, 46, 62, 63, 64, 92, 0x7F, 0x40, 0x41, 0xFF, 0x80]
    bvals = [0, 1, (1 << 30), (1 << 31) - 1, (1 << 32) - 1]
    for j, av in enumerate(sorted(avals)):
        out.append((av, bvals[j % len(bvals)] if j % 3 == 0 else int(rng.integers(0, 1 << 32)),
                    svals[j % len(svals)]))
    return out


def _simulate(workdir):
    from magma_llama.verilog.emit import MLIR_OPTS
    from magma_llama.streams.testbench import fault_ready, printf_format
    fault = fault_ready()
    bench, signals = _bench()
    tester = fault.Tester(bench, bench.CLK)
    fmt = "v " + " ".join(printf_format(k, len(getattr(bench, k))) for k in signals) + " ;\\n"
    tester.poke(bench.poke, 1)
    tester.poke(bench.load, 0)
    edge = edge_operands()
    for av, bv, sv in edge + edge[-1:] * PIPE_PAD:        # the pad lets the last ones leave the pipelines
        tester.poke(bench.A, av)
        tester.poke(bench.B, bv)
        tester.poke(bench.S, sv)
        tester.eval()
        tester.print(fmt, *[getattr(bench, k) for k in signals])
        tester.step(2)
    tester.poke(bench.poke, 0)
    for seed in SEEDS:
        tester.poke(bench.seed, seed)
        tester.poke(bench.load, 1)
        tester.step(2)
        tester.poke(bench.load, 0)
        loop = tester.loop(RANDOM_CYCLES)
        loop.print(fmt, *[getattr(bench, k) for k in signals])
        loop.step(2)
    workdir.mkdir(parents=True, exist_ok=True)
    tester.compile_and_run("verilator", directory=str(workdir), magma_output="mlir-verilog",
                           magma_opts=MLIR_OPTS,
                           flags=["-Wno-fatal", "--output-split", "0"], skip_compile=False, disp_type="on_error")
    log = Path(workdir) / "obj_dir" / f"{bench.name}.log"
    rows = []
    for rec in (r.strip() for r in log.read_text().split(";")):
        if rec.startswith("v "):
            rows.append(dict(zip(signals, (int(x, 16) for x in rec.split()[1:]))))
    n_edge = len(edge_operands())
    if len(rows) != n_edge + PIPE_PAD + RANDOM_CYCLES * len(SEEDS):
        raise RuntimeError(f"simulation log {log} is incomplete ({len(rows)} rows)")
    return rows, n_edge


@pytest.fixture(scope="module")
def sim(request):
    return once_per_test_run(request, "units_bench", _simulate)


def _col(rows, key, w=64, signed=True):
    return np.array([_signed(r[key], w) if signed else r[key] for r in rows], dtype=object)


def _operands(rows):
    a = np.array([_signed(r["a"], 64) for r in rows], I64)
    b31 = np.array([r["b"] & ((1 << 31) - 1) for r in rows], I64)
    s = np.array([r["s"] for r in rows], I64)
    k7 = np.array([_signed(r["s"], 7) for r in rows], I64)
    x32 = np.array([_signed(r["a"], 32) for r in rows], I64)
    u62 = np.array([r["a"] & ((1 << 62) - 1) for r in rows], I64)
    return a, b31, s, k7, x32, u62


def _mismatches(got, want, mask=None):
    got, want = np.asarray(got, object), np.asarray([int(v) for v in np.ravel(want)], object)
    bad = got != want
    if mask is not None:
        bad &= mask
    return np.flatnonzero(bad)


def _report(name, rows, idx, got, want):
    j = idx[0]
    return f"{name}: {idx.size} mismatches, first at row {j}: a={rows[j]['a']:#x} b={rows[j]['b']:#x} " \
           f"s={rows[j]['s']:#x}: got {got[j]}, want {want[j]}"


def check_units(rows):
    """{unit: values compared}; raises AssertionError on the first unit with a mismatch."""
    a, b31, s, k7, x32, u62 = _operands(rows)
    counts = {}

    def cmp(name, got, want, mask=None):
        want = np.asarray([int(v) for v in np.ravel(want)], object)
        idx = _mismatches(got, want, mask)
        assert idx.size == 0, _report(name, rows, idx, got, want)
        counts[name] = int(len(rows) if mask is None else mask.sum())

    # the array form of fixed.rshr wraps at int64 when adding the rounding half; the unit
    # widens: compare where numpy does not wrap
    def nowrap(sh):
        return a <= I64((1 << 63) - 1) - (np.left_shift(I64(1), np.minimum(np.maximum(sh, 0), 62)) >> 1)
    cmp("rshr_rt", _col(rows, "rshr_rt"), F.rshr(a, s), nowrap(s))
    for c in RSHR_CONST:
        # the array form of fixed.rshr wraps at int64; the unit widens: compare where no wrap
        ok = a <= I64((1 << 63) - 1 - (1 << c >> 1))
        cmp(f"rshr_c{c}", _col(rows, f"rshr_c{c}"), F.rshr(a, c), ok)
    cmp("sat", _col(rows, "sat", 32), F.sat(a, 32))
    # shift_sat with a runtime k: fixed.shift_sat on one-element arrays (its int64 shift is
    # defined for k < 32 here)
    ks = (k7 < 32) & nowrap(-k7)
    want = [int(F.shift_sat(np.array([x]), int(k), 32)[0]) if k < 32 else 0 for x, k in zip(a, k7)]
    cmp("shift_sat", _col(rows, "shift_sat", 32), want, ks)
    cmp("shift_each", _col(rows, "shift_each"), F.shift_each(a, k7), nowrap(-k7))
    want = [int(FN.apply_scale(np.array([x]), (int(mt), int(e)))[0]) for x, mt, e in zip(x32, b31, k7)]
    cmp("apply_scale", _col(rows, "apply_scale", 32), want)
    s7 = s & 0x7F
    ok = (s7 >= 1) & (s7 <= 92)
    # the product must fit 64 bits after the shift (the numpy split form assumes it)
    fits = np.array([abs(int(x) * int(y)) >> max(int(k), 1) < (1 << 62) for x, y, k in zip(a, b31, s7)])
    want = [int(F.mul_rshr_wide(np.array([x]), int(y), int(k))[0]) if g else 0
            for x, y, k, g in zip(a, b31, s7, ok & fits)]
    cmp("mul_rt", _col(rows, "mul_rt"), want, ok & fits)
    fits = np.array([abs(int(x) * int(y)) >> MUL_CONST_SHIFT < (1 << 62) for x, y in zip(a, b31)])
    want = [int(F.mul_rshr_wide(np.array([x]), int(y), MUL_CONST_SHIFT)[0]) for x, y in zip(a, b31)]
    cmp("mul_c", _col(rows, "mul_c"), want, fits)
    cmp("exp_neg", _col(rows, "exp_neg", signed=False), FN.exp_neg(x32))
    pos = u62 >= 1
    a1 = np.maximum(u62, 1)
    for name, fn, frac in (("recip", FN.recip, RECIP_FRAC), ("rsqrt", FN.rsqrt, RSQRT_FRAC),
                           ("rsqrt7", FN.rsqrt, RSQRT_FRAC_ODD)):
        mt, ex = fn(a1, frac)
        cmp(f"{name}_m", _col(rows, f"{name}_m", signed=False), mt, pos)
        cmp(f"{name}_e", _col(rows, f"{name}_e", 8), ex, pos)
    cmp("sigmoid", _col(rows, "sigmoid", signed=False), FN.sigmoid(x32))
    cmp("silu", _col(rows, "silu", 32), FN.silu(x32))
    sm = [FN.scale_mul((int(mt) | (1 << 30), _signed(int(sv), 6)),
                       (int(r["a"] & ((1 << 31) - 1)) | (1 << 30), _signed(r["a"] >> 40, 6)))
          for mt, sv, r in zip(b31, s, rows)]
    cmp("smul_m", _col(rows, "smul_m", signed=False), [v[0] for v in sm])
    cmp("smul_e", _col(rows, "smul_e", 8), [v[1] for v in sm])
    cos = _rope_cos()
    cmp("rom", _col(rows, "rom", 32), cos[np.minimum(a & 0x7FF, cos.size - 1)])
    return counts


def test_units_bit_exact(sim):
    rows, n_edge = sim
    counts = check_units(rows)
    assert min(counts.values()) > 1000, counts


def test_units_edge_cases(sim):
    """The poked edge cases alone (so a failure names them) reach the interesting ranges."""
    rows, n_edge = sim
    edge = rows[:n_edge]
    check_units(edge)
    _, _, _, _, x32, u62 = _operands(edge)
    e = FN.exp_neg(x32)
    assert (e == 0).any() and (e == 1 << 30).any() and ((e > 0) & (e < 1 << 30)).sum() > 100
    mags = {int(v).bit_length() for v in u62 if v > 0}
    assert mags >= set(range(1, 63)), sorted(set(range(1, 63)) - mags)


def test_units_random_ranges(sim):
    """The random operands cover the ranges: every magnitude of recip's input, both signs
    and the saturating ends of exp_neg/sigmoid."""
    rows, n_edge = sim
    _, _, _, _, x32, u62 = _operands(rows[n_edge + PIPE_PAD:])
    mags = {int(v).bit_length() for v in u62 if v > 0}
    assert mags >= set(range(1, 63))
    sg = FN.sigmoid(x32)
    assert (sg == 0).any() or (sg < 1 << 10).any()
    assert (sg == 1 << 30).any() and (x32 < 0).sum() > 1000


def test_mutant_lut_entry_caught(sim):
    """exp_neg elaborated with exp2_lut[77] + 1 differs from the numpy model."""
    rows, _ = sim
    _, _, _, _, x32, _ = _operands(rows)
    want = FN.exp_neg(x32)
    got = _col(rows, "exp_neg_mut", signed=False)
    assert _mismatches(got, want).size > 0


def test_pipelined_units_bit_exact(sim):
    """exp_neg, recip and silu with their pipeline cuts: the output on each row is numpy's of
    the operands `len(pipeline)` rows before (the rows of a segment are consecutive cycles:
    the edge cases and their pad, then each seed's run), over every edge case and random row."""
    from magma_llama.stages import latency as L
    rows, n_edge = sim
    a, b31, s, k7, x32, u62 = _operands(rows)
    starts = [0, n_edge + PIPE_PAD] + [n_edge + PIPE_PAD + RANDOM_CYCLES * (i + 1) for i in range(len(SEEDS))]
    pos = u62 >= 1
    compared = {}
    for name, lat, want in (
            ("exp_neg_p", len(L.EXP_NEG_PIPELINE), lambda j: FN.exp_neg(x32[j])),
            ("recip_p_m", len(L.RECIP_PIPELINE), lambda j: FN.recip(np.maximum(u62[j], 1), RECIP_FRAC)[0]),
            ("recip_p_e", len(L.RECIP_PIPELINE), lambda j: FN.recip(np.maximum(u62[j], 1), RECIP_FRAC)[1]),
            ("rsqrt_p_m", len(L.RSQRT_PIPELINE), lambda j: FN.rsqrt(np.maximum(u62[j], 1), RSQRT_FRAC)[0]),
            ("rsqrt_p_e", len(L.RSQRT_PIPELINE), lambda j: FN.rsqrt(np.maximum(u62[j], 1), RSQRT_FRAC)[1]),
            ("silu_p", len(L.SILU_PIPELINE), lambda j: FN.silu(x32[j]))):
        assert lat <= PIPE_PAD
        w = 8 if name.endswith("_e") else 31 if name in ("exp_neg_p", "recip_p_m", "rsqrt_p_m") else 32
        got = _col(rows, name, w, signed=name in ("recip_p_e", "rsqrt_p_e", "silu_p"))
        n = 0
        for lo, hi in zip(starts, starts[1:]):
            j = np.arange(lo, hi - lat)                   # operand rows whose result is on row j + lat
            mask = pos[j] if name.startswith(("recip", "rsqrt")) else None
            want_v = np.asarray([int(v) for v in np.ravel(want(j))], object)
            idx = _mismatches(got[j + lat], want_v, mask)
            assert idx.size == 0, _report(name, [rows[i] for i in j], idx, got[j + lat], want_v)
            n += len(j) if mask is None else int(mask.sum())
        compared[name] = n
    # every edge case went through each pipeline (the pad), and both seeds' runs
    assert min(compared.values()) > n_edge + RANDOM_CYCLES, compared
