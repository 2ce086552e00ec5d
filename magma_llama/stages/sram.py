"""On-chip SRAM: one write port and one read port, as an external Verilog module.

Two read styles: combinational (`RDATA = mem[RADDR]`, what the simulation-first stages
were written for) and registered (`registered=True`: RDATA is mem[RADDR] sampled at the
clock edge, as a block RAM (ECP5 DP16KD) or an SRAM macro reads; Yosys infers block or
distributed RAM from it, never flip-flops).  A stage on the registered style presents the
address a cycle before it uses the word.

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


def _text(name: str, depth: int, width: int, abits: int, registered: bool, read_enable: bool,
          read_clock: bool = False) -> str:
    rclk = "RCLK" if read_clock else "CLK"
    if registered:    # a read during a write of the same word returns the old word (read first)
        read = (f"  reg [{width - 1}:0] rdata;\n"
                f"  always @(posedge {rclk}) {'if (RE) ' if read_enable else ''}rdata <= mem[RADDR];\n"
                f"  assign RDATA = rdata;\n")
    else:
        read = f"  assign RDATA = mem[RADDR];\n"
    re = "input RE, " if read_enable else ""
    rc = "input RCLK, " if read_clock else ""
    return (f"module {name} (input CLK, {rc}{re}input [{abits - 1}:0] RADDR, output [{width - 1}:0] RDATA,\n"
            f"    input WE, input [{abits - 1}:0] WADDR, input [{width - 1}:0] WDATA);\n"
            f"  reg [{width - 1}:0] mem [0:{depth - 1}];\n"
            f"  always @(posedge CLK) if (WE) mem[WADDR] <= WDATA;\n"
            f"{read}"
            f"endmodule\n")


@functools.lru_cache(maxsize=None)
def Sram(depth: int, width: int, registered: bool = False, read_enable: bool = False, read_clock: bool = False):
    """A depth x width SRAM: mem[WADDR] <= WDATA when WE; RDATA = mem[RADDR], combinational, or
    (registered) sampled at the clock edge, with read_enable only in the cycles where RE is high
    (the read register holds its word otherwise: a block RAM's output clock enable).
    read_clock: the registered read on its own clock `RCLK` (a block RAM's read port has its
    own clock), so a reader on a gated clock sees the word change only on its own edges."""
    if read_enable and not registered:
        raise ValueError("sram: a read enable needs the registered read")
    if read_clock and not registered:
        raise ValueError("sram: a read clock needs the registered read")
    abits = clog2(depth)
    name = f"Sram{'RE' if read_enable else 'R' if registered else ''}{'C' if read_clock else ''}_{depth}x{width}"
    _SOURCES[name] = _text(name, depth, width, abits, registered, read_enable, read_clock)

    module_name = name

    class _Sram(m.Circuit):
        name = module_name          # named in the class body: the CoreIR backend keys on it
        io = m.IO(CLK=m.In(m.Clock), **({"RCLK": m.In(m.Clock)} if read_clock else {}),
                  **({"RE": m.In(m.Bit)} if read_enable else {}),
                  RADDR=m.In(m.Bits[abits]), RDATA=m.Out(m.Bits[width]),
                  WE=m.In(m.Bit), WADDR=m.In(m.Bits[abits]), WDATA=m.In(m.Bits[width]))
    return _Sram


def _rom_text(name: str, values: list[int], width: int, abits: int) -> str:
    init = "".join(f"    mem[{i}] = {width}'h{v & ((1 << width) - 1):x};\n" for i, v in enumerate(values))
    return (f"module {name} (input CLK, input RE, input [{abits - 1}:0] RADDR, output [{width - 1}:0] RDATA);\n"
            f"  reg [{width - 1}:0] mem [0:{len(values) - 1}];\n"
            f"  initial begin\n{init}  end\n"
            f"  reg [{width - 1}:0] rdata;\n"
            f"  always @(posedge CLK) if (RE) rdata <= mem[RADDR];\n"
            f"  assign RDATA = rdata;\n"
            f"endmodule\n")


def Rom(stem: str, values, width: int):
    """A constant table as a block-RAM ROM: RDATA = values[RADDR] (two's complement, `width`
    bits) sampled at the clock edge where RE is high, held otherwise.  A table written as
    logic is a mux tree of constants (and a wide one exhausts Yosys' memory); as a memory
    with a registered read it is what a block RAM initialised at configuration holds.
    `stem` names the table; the module name carries a hash of its contents."""
    import hashlib
    values = [int(v) for v in values]
    digest = hashlib.sha256(repr((values, width)).encode()).hexdigest()[:10]
    return _rom(f"Rom_{stem}_{len(values)}x{width}_{digest}", tuple(values), width)


@functools.lru_cache(maxsize=None)
def _rom(name: str, values: tuple, width: int):
    abits = clog2(len(values))
    _SOURCES[name] = _rom_text(name, list(values), width, abits)
    module_name = name

    class _Rom(m.Circuit):
        name = module_name
        io = m.IO(CLK=m.In(m.Clock), RE=m.In(m.Bit), RADDR=m.In(m.Bits[abits]), RDATA=m.Out(m.Bits[width]))
    return _Rom


def memory(name: str, depth: int, width: int, clk, we, waddr, wdata, raddr, registered: bool = False):
    """An Sram(depth, width, registered) instance with both its ports wired; returns its RDATA
    (mem[raddr]: combinational, or registered a cycle later).  The way a stage keeps a vector:
    one write and one read a cycle, which a simulator does as one store and one load, not a
    compare-and-select per element as registers with their own write enables cost."""
    s = Sram(depth, width, registered)(name=name)
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
