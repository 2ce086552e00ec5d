"""A GTKWave save file for a decoder trace: the stream ports of every unit, grouped.

Verilator names the scopes TOP.TbTop.dut.<instance>; the layout lists the clock, the
cycle counter, the program registers (op, layer, pos) and, per unit, each stream's
valid and ready (the same streams the timeline probe records, decoder/timeline.py).
Open it with `gtkwave run.vcd run.gtkw` (docs/waveforms.md)."""

from __future__ import annotations

import re
from pathlib import Path

from magma_llama.decoder.timeline import register_bits, streams_of

SCOPE = "TOP.TbTop"
BINARY, DECIMAL, HEX = "@28", "@24", "@22"
GROUP_OPEN, GROUP_CLOSE = "@800200", "@1000200"
# zoom 2^-7: about 300 cycles across the window (a cycle is 2 time units), no markers set
ZOOM = "*-7.000000 -1" + " -1" * 26


def decoder_name(tb_sv: str) -> str | None:
    m = re.search(r"^\s*(\w+)\s+dut\s*\(", tb_sv, re.M)
    return m.group(1) if m else None


def gtkw_text(verilog: str, decoder: str, dumpfile: str) -> str:
    lines = [f'[dumpfile] "{dumpfile}"', "[size] 1600 900", ZOOM, "[timestart] 0", "[treeopen] TOP.", f"[treeopen] {SCOPE}.",
             "[sst_width] 260", "[signals_width] 240", BINARY, f"{SCOPE}.CLK", f"{SCOPE}.RESET", DECIMAL,
             f"{SCOPE}.cycles[63:0]"]
    for reg in ("op", "layer", "pos"):
        bits = register_bits(verilog, decoder, reg)
        if bits:
            lines.append(f"{SCOPE}.dut.{reg}" + (f"[{bits - 1}:0]" if bits > 1 else ""))
    units: dict[str, list] = {}
    for s in streams_of(verilog, decoder):
        units.setdefault(s.unit, []).append(s)
    for unit, streams in units.items():
        lines += [GROUP_OPEN, f"-{unit}", BINARY]
        for s in streams:
            prefix = "TOP." + s.path
            lines += [f"{prefix}_valid", f"{prefix}_ready"]
        lines += [GROUP_CLOSE, f"-{unit}"]
    return "\n".join(lines) + "\n"


def write_gtkw(built, trace: str) -> Path:
    """trace's .gtkw beside it (same stem), for the build `built` (decoder/build.RtlBuild)."""
    directory = Path(built.directory)
    verilog = (directory / "decoder.v").read_text()
    name = decoder_name((directory / "tb.sv").read_text())
    out = Path(trace).with_suffix(".gtkw")
    out.write_text(gtkw_text(verilog, name, str(Path(trace).resolve())))
    return out


__all__ = ["decoder_name", "gtkw_text", "write_gtkw"]
