"""A clock gate (an ICG cell's model): GCLK = CLK while EN was high at the last falling edge.

A unit that is idle for most of a token (the attention heads outside Q and ATT, RMSNorm
outside its loads and norms, ...) gets a gated clock, as a power-aware design would.  It
also pays in simulation: Verilator evaluates a clock domain's registers, and the logic
that only they feed, on that domain's edges alone, so an idle unit costs next to nothing
per cycle instead of its whole datapath.

EN is sampled on the falling edge of CLK (the flop-based form of the latch ICG), so GCLK
has no glitch when EN, launched by a rising edge, changes: a unit clocked through the
gate sees the rising edges of the cycles in which EN is high.  Like a real ICG, the gate
says nothing before its first falling edge, so a testbench runs the clock (falling edges
included) during reset, with EN high then.  Like `Sram`, the cell is a
magma declaration of a Verilog module (`sram.sources_for` adds its text to builds).
"""

from __future__ import annotations

import functools

import magma as m

from magma_llama.stages.sram import register_source

NAME = "ClockGate"
_TEXT = (f"module {NAME} (input CLK, input EN, output GCLK);\n"
         f"  reg en_q;\n"
         f"  always @(negedge CLK) en_q <= EN;\n"
         f"  assign GCLK = CLK & en_q;\n"
         f"endmodule\n")


@functools.lru_cache(maxsize=None)
def ClockGate():
    register_source(NAME, _TEXT)

    class _ClockGate(m.Circuit):
        name = NAME
        io = m.IO(CLK=m.In(m.Clock), EN=m.In(m.Bit), GCLK=m.Out(m.Bit))
    return _ClockGate


def gated_clock(name: str, clk, en):
    """A ClockGate instance on clk, enabled by en; returns its GCLK."""
    g = ClockGate()(name=name)
    g.CLK @= clk
    g.EN @= en
    return m.clock(g.GCLK)
