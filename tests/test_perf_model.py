"""The analytic cycle model (magma_llama/perf.py) against the decoder's own per-op cycle
counters (the testbench counts the cycles spent in each value of the `op` register), on
one short RTL run, so the model cannot drift from the hardware unnoticed.

Synthetic gqa_unshared (GQA 6 on 2 heads, unshared classifier, hidden 100: padded rows
at L = 8), L = 8, w16: one Verilator build (cached under build/rtl/)."""

from __future__ import annotations

import pytest

from magma_llama import perf

SHAPE, LANES, BITS = "gqa_unshared", 8, 16
POSITIONS = 4
OP_TOLERANCE = 0.02          # per op: 2% (+ 2 cycles); the model is exact when its constants are current
TOKEN_TOLERANCE = 0.01       # the total per token; 2% under a bandwidth limit (prefetch credit is not modelled)


@pytest.fixture(scope="module")
def rtl(synthetic):
    from magma_llama.decoder.build import build_rtl, weight_hex
    from magma_llama.decoder.top import check_config
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.numerics.image import load_or_build
    from magma_llama.numerics.weights import weight_format
    model, _ = synthetic(SHAPE, 1)
    ckpt = read_checkpoint(model)
    layout = check_config(ckpt.config, LANES, BITS)
    image, image_path = load_or_build(ckpt, weight_format(f"w{BITS}"))
    built = build_rtl(ckpt.config, LANES, BITS, log=None)
    return ckpt.config, built.binary, weight_hex(image, image_path, layout)


def _run(rtl, positions, **memory):
    """Greedy from BOS: per position, the cycles of each op (by name), and the run's stats."""
    from magma_llama.decoder.sim import RtlDecoder
    from magma_llama.decoder.top import PROGRAM
    _, binary, hex_path = rtl
    per_pos, before = [], None
    with RtlDecoder(binary, hex_path, **memory) as sim:
        token = 1
        for pos in range(positions):
            token = sim.step(token, pos, True)
            ops = sim.op_cycles()
            per_pos.append({o.name: ops[i] - (before[i] if before else 0) for i, o in enumerate(PROGRAM)})
            before = ops
        assert sum(ops) == sim.stats().cycles       # every cycle is in some op
        return per_pos, sim.stats()


def test_every_op_of_every_position(rtl):
    cfg = rtl[0]
    per_pos, stats = _run(rtl, POSITIONS)
    hw = perf.Hardware(LANES, BITS)
    for pos, measured in enumerate(per_pos):
        predicted = perf.op_cycles(cfg, hw, pos)
        assert set(predicted) == set(measured)
        bad = {k: (measured[k], predicted[k]) for k in measured
               if abs(predicted[k] - measured[k]) > OP_TOLERANCE * measured[k] + 2}
        assert not bad, f"position {pos}: op cycles (measured, model) off: {bad}"
    model = perf.token_cycles(cfg, hw, POSITIONS)
    assert abs(model / stats.cycles_per_token - 1) <= TOKEN_TOLERANCE, (model, stats.cycles_per_token)
    # the bound: a token's port words; the hardware cannot beat it
    assert perf.bound_cycles(cfg, hw) < stats.cycles_per_token
    assert stats.wdata_words == pytest.approx(perf.bound_cycles(cfg, hw) * POSITIONS)


def ungated(cfg, lanes, bits):
    """The decoder with every unit on the main clock (no clock gating)."""
    from magma_llama.decoder.top import Decoder
    return Decoder(cfg, lanes, bits, clock_gating=False)


def test_clock_gating_changes_no_cycle(rtl):
    """Clock gating (decoder.md) only stops units outside the ops that use them: the gated
    and the ungated decoder give the same cycles, op by op (also under a bandwidth limit,
    which stalls the units at other moments), and the same sampled tokens at the same
    cycles under TOK_OUT backpressure."""
    from magma_llama.decoder.build import build_rtl
    from magma_llama.decoder.sim import RtlDecoder
    from magma_llama.numerics.sampling import inv_temperature_q16, prng_seed
    cfg, _, hex_path = rtl
    other = (cfg, build_rtl(cfg, LANES, BITS, factory=ungated, log=None).binary, hex_path)
    assert other[1] != rtl[1]
    for memory in ({}, {"latency": 9, "bytes_per_cycle": 5}):
        (ops_a, st_a), (ops_b, st_b) = (_run(r, POSITIONS, **memory) for r in (rtl, other))
        assert ops_a == ops_b, memory                                  # per position, per op
        assert (st_a.cycles, st_a.wdata_words) == (st_b.cycles, st_b.wdata_words), memory
    beats = []
    for _, binary, hexp in (rtl, other):
        with RtlDecoder(binary, hexp, inv_t=inv_temperature_q16(0.9), seed=prng_seed(7), ready_percent=60,
                        ready_seed=3) as sim:
            token = 1
            for pos in range(POSITIONS):
                token = sim.step(token, pos, True)
            beats.append([(b.token, b.cycle, b.wdata_words) for b in sim.beats])
    assert beats[0] == beats[1]


def test_latency_and_bandwidth_limit(rtl):
    cfg = rtl[0]
    latency, bpc = 9, 5                 # 24-byte words: 4.8 cycles a word
    _, stats = _run(rtl, 2, latency=latency, bytes_per_cycle=bpc)
    hw = perf.Hardware(LANES, BITS, latency, bpc)
    assert perf.cycles_per_word(perf.PortLayout(cfg, LANES, BITS), bpc) == pytest.approx(4.8)
    model = perf.token_cycles(cfg, hw, 2)
    assert abs(model / stats.cycles_per_token - 1) <= 2 * TOKEN_TOLERANCE, (model, stats.cycles_per_token)
    assert perf.bound_cycles(cfg, hw) < stats.cycles_per_token
