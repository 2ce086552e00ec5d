"""Ready/valid streams: the one interface between every stage of the decoder.

`Stream`, `StreamIn`, `StreamOut`, `Packet`, `Routed` are the types; each building
block is a parameterised Magma generator in its own module; `S(...)` chains them
(`S(io.I).queue(4).pipe() >> io.O`).  The rule every block keeps is in
docs/streams.md, and formal/ proves it (docs/formal.md)."""

from magma_llama.streams.types import Packet, Routed, Stream, StreamIn, StreamOut, clog2  # noqa: F401
from magma_llama.streams.pipe import Pipe  # noqa: F401
from magma_llama.streams.skid import Skid  # noqa: F401
from magma_llama.streams.fifo import Fifo  # noqa: F401
from magma_llama.streams.fork import Fork  # noqa: F401
from magma_llama.streams.join import Join  # noqa: F401
from magma_llama.streams.zip_with import ZipWith  # noqa: F401
from magma_llama.streams.arbiter import Arbiter  # noqa: F401
from magma_llama.streams.demux import Demux  # noqa: F401
from magma_llama.streams.width import Downsize, Upsize  # noqa: F401
from magma_llama.streams.packetize import Packetize  # noqa: F401
from magma_llama.streams.chain import S, arbitrate, connect, demux_stream, join_streams  # noqa: F401
