"""fault + Verilator, random stalls: fork, join, zip_with, round-robin arbiter and demux against Python models."""

from __future__ import annotations

import pytest

from tests.streams_sim import (FORK_PICK, N_ARB, N_DEMUX, N_FORK, N_JOIN, ModelMismatch, arbiter_model,
                               check_all_runs, demux_model, expect_mutant_caught, fork_model, join_model,
                               stream_sim, zip_with_xor_model)  # noqa: F401  (fixture)


def test_fork(stream_sim):
    assert check_all_runs(stream_sim, "fork", fork_model(N_FORK)) > 500


def test_fork_pick(stream_sim):
    """The scatter form the decoder uses for the KV rows: same handshake, a part each."""
    assert check_all_runs(stream_sim, "fork_pick", fork_model(N_FORK, FORK_PICK)) > 500
    with pytest.raises(ModelMismatch):      # the model looks at the parts: whole beats do not pass
        check_all_runs(stream_sim, "fork_pick", fork_model(N_FORK, (0, 1, 0)))


def test_join(stream_sim):
    assert check_all_runs(stream_sim, "join", join_model(N_JOIN)) > 500


def test_zip_with(stream_sim):
    assert check_all_runs(stream_sim, "zip", zip_with_xor_model) > 500


def test_arbiter(stream_sim):
    assert check_all_runs(stream_sim, "arb", arbiter_model(N_ARB)) > 1000


def test_demux(stream_sim):
    assert check_all_runs(stream_sim, "demux", demux_model(N_DEMUX)) > 500


@pytest.mark.parametrize("label,model", [("fork_mut", fork_model(N_FORK)), ("join_mut", join_model(N_JOIN)),
                                         ("zip_eager", zip_with_xor_model), ("zip_overwrite", zip_with_xor_model),
                                         ("arb_mut", arbiter_model(N_ARB)), ("demux_mut", demux_model(N_DEMUX))])
def test_broken_routing_is_caught(stream_sim, label, model):
    expect_mutant_caught(stream_sim, label, model)
