"""Write designs of the table as CoreIR JSON and Verilog, and lint the Verilog.

Each design is compiled in its own (forked) process: magma 2.6's CoreIR backend
rewires shared primitive definitions (muxes), so a second CoreIR compile in the
same process can fail.  Files are named after the top module, which carries the
parameters (e.g. Fifo_b8_d4.v), so Verilator's file/module name check holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

from magma_llama.errors import MagmaLlamaError
from magma_llama.verilog import mux_lowering
from magma_llama.paths import REPO

FORMATS = ("coreir", "verilog")
WAIVERS = REPO / "formal" / "lint_waivers.vlt"
# the CIRCT options under which Yosys and Verilator read magma's Verilog (fault takes them
# as `magma_opts`, with `magma_output="mlir-verilog"`)
MLIR_OPTS = dict(disallow_local_variables=True, disallow_packed_struct_assignments=True, flatten_all_tuples=True)
# every compile under these options takes its 2-way muxes as ternaries (verilog/mux_lowering.py)
mux_lowering.install()
VERILOG_OPTS = dict(output="mlir-verilog", **MLIR_OPTS)


class EmitError(MagmaLlamaError):
    """A design could not be compiled or written."""


def compile_verilog(circuit, outdir: Path, stem: str | None = None) -> Path:
    """Verilog as Yosys and Verilator read it (the form proofs and simulations use), with the
    external SRAM models it needs, in outdir/<stem or the top's name>.v."""
    import magma as m
    outdir.mkdir(parents=True, exist_ok=True)
    base = outdir / (stem or circuit.name)
    m.compile(str(base), circuit, **VERILOG_OPTS)
    mlir = base.with_suffix(".mlir")
    if mlir.exists():
        mlir.unlink()
    verilog = base.with_suffix(".v")
    from magma_llama.stages.sram import sources_for
    srams = sources_for(verilog.read_text())
    if srams:                      # external SRAM models (stages/sram.py) go into the same file
        with open(verilog, "a") as f:
            f.write("\n" + srams)
    return verilog



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


def _emit_child(job):
    name, formats, outdir = job
    try:
        return _emit_here(name, formats, Path(outdir))
    except Exception as e:  # reported by the parent as one error line
        return {"name": name, "error": f"{type(e).__name__}: {e}"}


def emit(names: list[str], formats: list[str], outdir: Path, workers: int = 2) -> list[dict]:
    """Emit every named design (all when none); returns [{name, top, files}].

    Each design compiles in a fresh process forked from this one (magma is imported
    once, here), see the module docstring."""
    import multiprocessing

    from magma_llama.formal.designs import select
    import magma  # noqa: F401  (imported before forking, so children start warm)
    designs = [d.name for d in select(names)]
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes=max(1, workers), maxtasksperchild=1) as pool:
        results = pool.map(_emit_child, [(n, list(formats), str(outdir)) for n in designs], chunksize=1)
    for r in results:
        if "error" in r:
            raise EmitError(f"could not emit {r['name']}: {r['error']}")
    return results


def lint(verilog: Path) -> tuple[bool, str]:
    """verilator --lint-only -Wall, with the one waiver file; (clean, messages)."""
    from magma_llama.toolchain import tool
    verilog = Path(verilog).resolve()
    cmd = [tool("verilator"), "--lint-only", "-Wall", str(WAIVERS), str(verilog)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=verilog.parent)
    msgs = proc.stdout + proc.stderr
    return proc.returncode == 0 and "%Warning" not in msgs and "%Error" not in msgs, msgs.strip()


