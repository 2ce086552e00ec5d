"""Rows of the design table for the stream library (see designs.py)."""

from __future__ import annotations

import magma as m

from magma_llama.formal.designs import Design, register
from magma_llama.streams import (Arbiter, Demux, Downsize, Fifo, Fork, Join, Packetize, Pipe, Skid,
                                 Upsize)
from magma_llama.streams import arbiter, demux, fifo, fork, join, packetize, pipe, skid, width
from magma_llama.streams.chain import S
from magma_llama.streams.types import StreamIn, StreamOut

B = m.Bits
# proofs use narrow payloads: the properties do not depend on the width, the solver does
FW = B[3]
EW = B[8]


def _mut(table):
    return tuple(table)


register(Design("pipe", "register slice, full throughput",
                emit=lambda: Pipe(EW), formal=lambda mutant=None: Pipe(FW, mutant, True),
                mutants=_mut(pipe.MUTANTS), depth=4))
register(Design("skid", "skid buffer, registered ready",
                emit=lambda: Skid(EW), formal=lambda mutant=None: Skid(FW, mutant, True),
                mutants=_mut(skid.MUTANTS), depth=4))
register(Design("fifo", "FIFO depth 3 (proof) / 4 (emit), occupancy output",
                emit=lambda: Fifo(EW, 4), formal=lambda mutant=None: Fifo(FW, 3, mutant, True),
                mutants=_mut(fifo.MUTANTS), depth=6))
register(Design("fifo1", "FIFO of depth 1 (the edge case of the pointer logic)",
                emit=lambda: Fifo(EW, 1), formal=lambda mutant=None: Fifo(FW, 1, mutant, True),
                mutants=_mut(fifo.MUTANTS), depth=4))
register(Design("fork", "broadcast to 3 (proof) / 2 (emit) outputs, exactly once each",
                emit=lambda: Fork(EW, 2), formal=lambda mutant=None: Fork(FW, 3, mutant, True),
                mutants=_mut(fork.MUTANTS), depth=4))
register(Design("join", "2 inputs -> one tuple stream",
                emit=lambda: Join(EW, 2), formal=lambda mutant=None: Join(FW, 2, mutant, True),
                mutants=_mut(join.MUTANTS), depth=4))
register(Design("arbiter", "round robin, 3 inputs",
                emit=lambda: Arbiter(EW, 3), formal=lambda mutant=None: Arbiter(FW, 3, mutant, True),
                mutants=_mut(arbiter.MUTANTS), depth=6, mutant_depth=16))
register(Design("demux", "route by the beat's sel field to 3 outputs",
                emit=lambda: Demux(EW, 3), formal=lambda mutant=None: Demux(FW, 3, mutant, True),
                mutants=_mut(demux.MUTANTS), depth=4))
register(Design("upsize", "2 narrow beats -> 1 wide beat",
                emit=lambda: Upsize(EW, 2), formal=lambda mutant=None: Upsize(FW, 2, mutant, True),
                mutants=_mut(width.UPSIZE_MUTANTS), depth=6))
register(Design("downsize", "1 wide beat -> 2 narrow beats",
                emit=lambda: Downsize(EW, 2), formal=lambda mutant=None: Downsize(FW, 2, mutant, True),
                mutants=_mut(width.DOWNSIZE_MUTANTS), depth=6))
register(Design("packetize", "last on every 3rd beat",
                emit=lambda: Packetize(EW, 3), formal=lambda mutant=None: Packetize(FW, 3, mutant, True),
                mutants=_mut(packetize.MUTANTS), depth=4))


class Chain(m.Circuit):
    """The SpinalHDL-style example of docs/streams.md: queue(4) then pipe then skid."""
    io = m.IO(I=StreamIn(EW), O=StreamOut(EW)) + m.ClockIO(has_reset=True)
    S(io.I).queue(4).pipe().skid() >> io.O


register(Design("chain", "S(I).queue(4).pipe().skid() >> O (emit only)", emit=lambda: Chain))
