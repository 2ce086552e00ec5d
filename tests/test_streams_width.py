"""fault + Verilator, random stalls: width adapters and the packetizer against Python models."""

from __future__ import annotations

import pytest

from tests.streams_sim import (K_PACKET, N_DOWN, N_UP, check_all_runs, downsize_model,
                               expect_mutant_caught, packetize_model, stream_sim,  # noqa: F401
                               upsize_model)


def test_upsize(stream_sim):
    assert check_all_runs(stream_sim, "up", upsize_model(N_UP)) > 1000


def test_downsize(stream_sim):
    assert check_all_runs(stream_sim, "down", downsize_model(N_DOWN)) > 1000


def test_packetize(stream_sim):
    assert check_all_runs(stream_sim, "pkt", packetize_model(K_PACKET)) > 1000


@pytest.mark.parametrize("label,model", [("up_mut", upsize_model(N_UP)), ("down_mut", downsize_model(N_DOWN)),
                                         ("pkt_mut", packetize_model(K_PACKET))])
def test_broken_adapters_are_caught(stream_sim, label, model):
    expect_mutant_caught(stream_sim, label, model)
