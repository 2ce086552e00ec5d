"""On-chip SRAM: one write port, one combinational read port, as an external Verilog module.

magma 2.6's `m.Memory` emits a packed 2-D array, which Verilator holds as one wide
word (and refuses past 64 Kbit); the KV cache and the sampler's logit buffer are far
larger.  `Sram(depth, width)` is a magma declaration of a plain `reg [W-1:0] mem [0:D-1]`
module whose Verilog `sram_sources()` returns; every build that simulates or emits a
design using it adds those sources (the way an SRAM macro's model is added).
`memory(...)` is an instance with both ports wired, for a stage's vector buffer.
"""

from __future__ import annotations

import functools
import re

import magma as m

from magma_llama.streams.types import clog2

_SOURCES: dict[str, str] = {}


def _text(name: str, depth: int, width: int, abits: int) -> str:
    return (f"module {name} (input CLK, input [{abits - 1}:0] RADDR, output [{width - 1}:0] RDATA,\n"
            f"    input WE, input [{abits - 1}:0] WADDR, input [{width - 1}:0] WDATA);\n"
            f"  reg [{width - 1}:0] mem [0:{depth - 1}];\n"
            f"  always @(posedge CLK) if (WE) mem[WADDR] <= WDATA;\n"
            f"  assign RDATA = mem[RADDR];\n"
            f"endmodule\n")


@functools.lru_cache(maxsize=None)
def Sram(depth: int, width: int):
    """A depth x width SRAM: RDATA = mem[RADDR] (combinational); mem[WADDR] <= WDATA when WE."""
    abits = clog2(depth)
    name = f"Sram_{depth}x{width}"
    _SOURCES[name] = _text(name, depth, width, abits)

    module_name = name

    class _Sram(m.Circuit):
        name = module_name          # named in the class body: the CoreIR backend keys on it
        io = m.IO(CLK=m.In(m.Clock), RADDR=m.In(m.Bits[abits]), RDATA=m.Out(m.Bits[width]),
                  WE=m.In(m.Bit), WADDR=m.In(m.Bits[abits]), WDATA=m.In(m.Bits[width]))
    return _Sram


def memory(name: str, depth: int, width: int, clk, we, waddr, wdata, raddr):
    """An Sram(depth, width) instance with both its ports wired; returns its RDATA
    (mem[raddr], combinational).  The way a stage keeps a vector: one write and one read a
    cycle, which a simulator does as one store and one load, not a compare-and-select per
    element as registers with their own write enables cost."""
    s = Sram(depth, width)(name=name)
    s.CLK @= clk
    s.WE @= we
    s.WADDR @= waddr
    s.WDATA @= wdata
    s.RADDR @= raddr
    return s.RDATA


def sram_sources() -> str:
    """The Verilog of every Sram declared in this process."""
    return "".join(_SOURCES[k] for k in sorted(_SOURCES))


def write_sram_sources(path) -> str:
    with open(path, "w") as f:
        f.write(sram_sources())
    return str(path)


def register_source(name: str, text: str) -> None:
    """Add a cell model (an external module's Verilog) to the sources builds include."""
    _SOURCES[name] = text


def sources_for(verilog_text: str) -> str:
    """The Verilog of the cells (SRAMs, clock gates) a compiled design declares as external modules."""
    names = sorted(set(re.findall(r"^// external module (\w+)$", verilog_text, re.M)) & set(_SOURCES))
    return "".join(_SOURCES[n] for n in names)
