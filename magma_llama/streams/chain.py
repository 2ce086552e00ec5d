"""Connecting streams: `connect(a, b)` and SpinalHDL-style chains.

Inside a circuit definition, wrap a stream that *produces* beats (an input port
of the definition, or an output port of an instance) and add stages by name:

    out = S(io.I).queue(4).pipe().skid()
    connect(out, io.O)            # or: out >> io.O

Each call instantiates one block, wires it to the previous stage and returns
the new producing end."""

from __future__ import annotations

import magma as m

from magma_llama.streams.types import payload_type


def connect(source, sink) -> None:
    """Wire a producing stream end to a consuming one: valid/data forward, ready back."""
    src = source.port if isinstance(source, S) else source
    dst = sink.port if isinstance(sink, S) else sink
    m.wire(src, dst)


class S:
    """The producing end of a stream inside a definition; methods add one stage each."""

    def __init__(self, port):
        self.port = port

    @property
    def T(self):
        return payload_type(self.port)

    def _through(self, circuit, name=None):
        inst = circuit(name=name) if name else circuit()
        m.wire(self.port, inst.I)
        return inst, S(inst.O)

    # `name`: the instance's name in the Verilog (and in waveforms and the timeline), where
    # magma's default (`Skid_b16_inst0`) would not say what the block is for
    def pipe(self, name: str | None = None) -> "S":
        from magma_llama.streams.pipe import Pipe
        return self._through(Pipe(self.T), name)[1]

    def skid(self, name: str | None = None) -> "S":
        from magma_llama.streams.skid import Skid
        return self._through(Skid(self.T), name)[1]

    def queue(self, depth: int, name: str | None = None) -> "S":
        from magma_llama.streams.fifo import Fifo
        return self._through(Fifo(self.T, depth), name)[1]

    def packetize(self, k: int) -> "S":
        from magma_llama.streams.packetize import Packetize
        return self._through(Packetize(self.T, k))[1]

    def upsize(self, n: int) -> "S":
        from magma_llama.streams.width import Upsize
        return self._through(Upsize(self.T, n))[1]

    def downsize(self) -> "S":
        from magma_llama.streams.width import Downsize
        T = self.T
        return self._through(Downsize(T.T, len(T)))[1]

    def fork(self, n: int) -> list["S"]:
        from magma_llama.streams.fork import Fork
        inst = Fork(self.T, n)()
        m.wire(self.port, inst.I)
        return [S(getattr(inst, f"O{k}")) for k in range(n)]

    def join(self, *others) -> "S":
        return join_streams(self, *others)

    def arbitrate(self, *others) -> "S":
        return arbitrate(self, *others)

    def demux(self, n: int) -> list["S"]:
        return demux_stream(self, n)

    def __rshift__(self, sink):
        connect(self, sink)
        return sink


def _merge(generator, streams) -> S:
    ss = [s if isinstance(s, S) else S(s) for s in streams]
    inst = generator(ss[0].T, len(ss))()
    for k, s in enumerate(ss):
        m.wire(s.port, getattr(inst, f"I{k}"))
    return S(inst.O)


def join_streams(*streams) -> S:
    """N producing ends -> one stream of N-tuples."""
    from magma_llama.streams.join import Join
    return _merge(Join, streams)


def arbitrate(*streams) -> S:
    """N producing ends -> one stream, round robin."""
    from magma_llama.streams.arbiter import Arbiter
    return _merge(Arbiter, streams)


def demux_stream(stream, n: int) -> list[S]:
    """A stream of Routed[T, n] -> n streams of T."""
    from magma_llama.streams.demux import Demux
    s = stream if isinstance(stream, S) else S(stream)
    T = s.T.field_dict["data"]
    inst = Demux(T, n)()
    m.wire(s.port, inst.I)
    return [S(getattr(inst, f"O{k}")) for k in range(n)]
