"""Rows of the design table for the stream library (see designs.py)."""

from __future__ import annotations

import functools

import magma as m

from magma_llama.formal.designs import Design, register
from magma_llama.streams import (Arbiter, Demux, Downsize, Fifo, Fork, Join, Packetize, Pipe, Skid,
                                 Upsize, ZipWith)
from magma_llama.streams import arbiter, demux, fifo, fork, join, packetize, pipe, skid, width, zip_with
from magma_llama.streams.chain import S
from magma_llama.streams.types import StreamIn, StreamOut

# proofs use narrow payloads: the properties do not depend on the width, the solver does
FW = m.Bits[3]
EW = m.Bits[8]

# name, doc, generator, emitted parameters, proved parameters, mutants, induction depth
ROWS = [
    ("pipe", "register slice, full throughput", Pipe, (), (), pipe.MUTANTS, 4),
    ("skid", "skid buffer, registered ready", Skid, (), (), skid.MUTANTS, 4),
    ("fifo", "FIFO depth 4 (emit) / 3 (proof), occupancy output", Fifo, (4,), (3,), fifo.MUTANTS, 6),
    ("fifo1", "FIFO of depth 1 (edge case of the pointer logic)", Fifo, (1,), (1,), fifo.MUTANTS, 4),
    ("fork", "broadcast to 2 (emit) / 3 (proof) outputs, exactly once each", Fork, (2,), (3,), fork.MUTANTS, 4),
    ("join", "2 inputs -> one stream of pairs", Join, (2,), (2,), join.MUTANTS, 4),
    ("zip_with", "2 inputs joined, fn(a, b) registered (xor here; Residual, SwiGLU)", ZipWith, (), (),
     zip_with.MUTANTS, 4),
    ("arbiter", "round robin over 3 inputs", Arbiter, (3,), (3,), arbiter.MUTANTS, 6),
    ("demux", "route by the beat's sel field to 3 outputs", Demux, (3,), (3,), demux.MUTANTS, 4),
    ("upsize", "2 narrow beats -> 1 wide beat", Upsize, (2,), (2,), width.UPSIZE_MUTANTS, 6),
    ("downsize", "1 wide beat -> 2 narrow beats", Downsize, (2,), (2,), width.DOWNSIZE_MUTANTS, 6),
    ("packetize", "last on every 3rd beat", Packetize, (3,), (3,), packetize.MUTANTS, 4),
]


def _formal(gen, params, mutant=None):
    return gen(FW, *params, mutant=mutant, formal=True)


for name, doc, gen, emit_params, formal_params, mutants, depth in ROWS:
    register(Design(name, doc,
                    emit=functools.partial(gen, EW, *emit_params),
                    formal=functools.partial(_formal, gen, formal_params),
                    mutants=tuple(mutants), depth=depth,
                    mutant_depth=16 if name == "arbiter" else 14))


class Chain(m.Circuit):
    """The SpinalHDL-style example of docs/streams.md: queue(4), then pipe, then skid."""
    io = m.IO(I=StreamIn(EW), O=StreamOut(EW)) + m.ClockIO(has_reset=True)
    S(io.I).queue(4).pipe().skid() >> io.O


register(Design("chain", "S(I).queue(4).pipe().skid() >> O (emit only)", emit=lambda: Chain))
