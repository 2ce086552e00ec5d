"""Write designs of the table as CoreIR JSON and Verilog, and lint the Verilog.

Each design is compiled in its own Python process: magma 2.6's CoreIR backend
rewires shared primitive definitions (muxes), so a second CoreIR compile in the
same process can fail.  Files are named after the top module, which carries the
parameters (e.g. Fifo_b8_d4.v), so Verilator's file/module name check holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from magma_llama.errors import MagmaLlamaError
from magma_llama.paths import REPO

FORMATS = ("coreir", "verilog")
WAIVERS = REPO / "formal" / "lint_waivers.vlt"
VERILOG_OPTS = dict(output="mlir-verilog", disallow_local_variables=True,
                    disallow_packed_struct_assignments=True, flatten_all_tuples=True)


class EmitError(MagmaLlamaError):
    """A design could not be compiled or written."""


def compile_verilog(circuit, outdir: Path) -> Path:
    """Verilog as Yosys and Verilator read it (the form proofs and simulations use)."""
    import magma as m
    outdir.mkdir(parents=True, exist_ok=True)
    base = outdir / circuit.name
    m.compile(str(base), circuit, **VERILOG_OPTS)
    mlir = base.with_suffix(".mlir")
    if mlir.exists():
        mlir.unlink()
    return base.with_suffix(".v")


def _emit_here(name: str, formats: list[str], outdir: Path) -> dict:
    import magma as m
    from magma_llama.formal.designs import select
    design = select([name])[0]
    circuit = design.emit()
    files = []
    if "verilog" in formats:
        files.append(str(compile_verilog(circuit, outdir)))
    if "coreir" in formats:
        base = outdir / circuit.name
        m.compile(str(base), circuit, output="coreir")
        files.append(str(base.with_suffix(".json")))
    return {"name": name, "top": circuit.name, "files": files}


def emit(names: list[str], formats: list[str], outdir: Path, workers: int = 2) -> list[dict]:
    """Emit every named design (all when none); returns [{name, top, files}]."""
    from magma_llama.formal.designs import select
    designs = [d.name for d in select(names)]
    outdir.mkdir(parents=True, exist_ok=True)

    def one(name):
        cmd = [sys.executable, "-m", "magma_llama.formal.emit", name, ",".join(formats), str(outdir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise EmitError(f"could not emit {name}: {tail}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, designs))


def lint(verilog: Path) -> tuple[bool, str]:
    """verilator --lint-only -Wall, with the one waiver file; (clean, messages)."""
    from magma_llama.toolchain import tool
    cmd = [tool("verilator"), "--lint-only", "-Wall", str(WAIVERS), str(verilog)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=verilog.parent)
    msgs = proc.stdout + proc.stderr
    return proc.returncode == 0 and "%Warning" not in msgs and "%Error" not in msgs, msgs.strip()


if __name__ == "__main__":  # one design per process, see the module docstring
    import warnings
    warnings.simplefilter("ignore")
    name, fmts, out = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
    print(json.dumps(_emit_here(name, fmts, out)))
