"""fault + Verilator, random stalls: pipe, skid buffer, FIFOs and chains built with `S(...)` keep every beat in order."""

from __future__ import annotations

import pytest

from tests.streams_sim import (FIFO_DEPTHS, N_UP, check_all_runs, expect_mutant_caught,
                               fifo_count_model, fifo_like, forkjoin_model, rate, stream_sim)  # noqa: F401


def test_pipe(stream_sim):
    assert check_all_runs(stream_sim, "pipe", fifo_like(1)) > 1000


def test_skid(stream_sim):
    assert check_all_runs(stream_sim, "skid", fifo_like(2)) > 1000


@pytest.mark.parametrize("depth", FIFO_DEPTHS)
def test_fifo(stream_sim, depth):
    assert check_all_runs(stream_sim, f"fifo{depth}", fifo_count_model(depth)) > 1000


def test_chain_queue_pipe_skid(stream_sim):
    assert check_all_runs(stream_sim, "chain", fifo_like(4 + 1 + 2)) > 1000


def test_chain_upsize_downsize_pipe_is_identity(stream_sim):
    assert check_all_runs(stream_sim, "roundtrip", fifo_like(N_UP + N_UP + 1)) > 1000


def test_chain_fork_queue_join(stream_sim):
    assert check_all_runs(stream_sim, "forkjoin", forkjoin_model) > 1000


# full throughput where docs/streams.md promises it: with sources and sinks each ready
# ~98% of the time a bubble-free block moves ~0.96 beats per cycle; one bubble per beat
# would halve it, as the depth-1 FIFO shows
@pytest.mark.parametrize("label,side", [("pipe", "out"), ("skid", "out"), ("fifo3", "out"), ("fifo4", "out"),
                                        ("chain", "out"), ("up", "in"), ("down", "out"), ("pkt", "out"),
                                        ("arb", "out"), ("demux", "in"), ("roundtrip", "out")])
def test_full_throughput(stream_sim, label, side):
    assert rate(stream_sim, label, side) > 0.9


def test_depth_one_fifo_is_half_rate(stream_sim):
    assert 0.4 < rate(stream_sim, "fifo1", "out") < 0.55


@pytest.mark.parametrize("label,model", [("pipe_mut", fifo_like(1)), ("skid_mut", fifo_like(2)),
                                         ("fifo3_mut", fifo_count_model(3))])
def test_broken_buffers_are_caught(stream_sim, label, model):
    expect_mutant_caught(stream_sim, label, model)
