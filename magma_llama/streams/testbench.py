"""Random-stall test benches for stream blocks, simulated with fault + Verilator.

`make_bench` wraps one or more devices in one circuit (so a single Verilator build
serves every block and every seed).  Each input stream of a device is fed by a
source that raises `valid` at random and then holds it, with its data, until the
transfer (the stream rule); each output stream is drained by a sink that raises
`ready` at random.  The coins are per-port xorshift16 generators loaded from the
`seed` input during reset, and stay silent in the first cycle after it; `vdensity` / `rdensity` (out of 256) set how often
sources offer and sinks accept.  Source beat k of a port carries
`rom[(k + seed) % 256]`, a table made in Python, so a model knows every beat.

`run_bench` simulates, printing every stream's valid/ready/payload each cycle, and
`Trace` turns the log back into per-port transfer lists for the models."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import magma as m

from magma_llama.formal.props import leaves
from magma_llama.streams.types import width

ROM_BITS = 8


@dataclass
class PortInfo:
    dut: str
    port: str
    direction: str            # "in": fed by a source; "out": drained by a sink
    widths: list[int]         # payload leaves, first leaf in the low bits
    rom: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.dut}_{self.port}"

    def split(self, value: int) -> tuple:
        """The payload's leaves from its packed value."""
        out = []
        for w in self.widths:
            out.append(value & ((1 << w) - 1))
            value >>= w
        return tuple(out)

    def beat(self, k: int, seed: int) -> int:
        """Packed payload of source beat k under `seed`."""
        return self.rom[(k + seed) % len(self.rom)]


def _is_stream(T) -> bool:
    return hasattr(T, "undirected_data_t") and (m.is_consumer(T) or m.is_producer(T))


def _xorshift(r):
    v = r ^ (r << 7)
    v = v ^ (v >> 9)
    return v ^ (v << 8)


def _packed(value):
    parts = [m.bits(x, 1) if isinstance(x, m.Digital) else m.bits(x) for x in leaves(value)]
    return m.concat(*parts) if len(parts) > 1 else parts[0]


def make_bench(duts: dict, rom_fn=None, name: str = "StreamBench"):
    """duts: {label: circuit}.  rom_fn(label, port, widths, rng) -> list of 256 packed
    payloads, or None for uniform random ones.  Returns (circuit, {key: PortInfo}, extras)
    where extras are the devices' other outputs, exposed as `label_port`."""
    ports: dict = {"seed": m.In(m.Bits[16]), "vdensity": m.In(m.UInt[8]), "rdensity": m.In(m.UInt[8])}
    streams, extras, extra_src = [], [], {}
    for label, dut in duts.items():
        for pname, T in dut.IO.items():
            if pname in ("CLK", "RESET"):
                continue
            key = f"{label}_{pname}"
            if _is_stream(T):
                streams.append((label, pname, "in" if m.is_consumer(T) else "out"))
                ports[f"{key}_valid"] = m.Out(m.Bit)
                ports[f"{key}_ready"] = m.Out(m.Bit)
                ports[f"{key}_data"] = m.Out(m.Bits[width(T.undirected_data_t)])
            else:
                extras.append(key)
                extra_src[key] = (label, pname)
                ports[key] = m.Out(T.undirected_t)
    infos: dict = {}

    def elaborate(io):
        insts = {label: dut(name=f"dut_{label}") for label, dut in duts.items()}
        rst = m.bit(io.RESET)
        for salt, (label, pname, direction) in enumerate(streams, start=1):
            key = f"{label}_{pname}"
            p = getattr(insts[label], pname)
            lv = leaves(p.data)
            widths = [width(type(x).undirected_t) for x in lv]
            w = sum(widths)
            info = infos[key] = PortInfo(label, pname, direction, widths)
            coin_reg = m.Register(m.Bits[16])(name=f"coin_{key}")
            seeded = (io.seed ^ m.bits((0x9E37 * salt) & 0xFFFF, 16)) | m.bits(1, 16)
            coin_reg.I @= m.mux([_xorshift(coin_reg.O), seeded], rst)
            coin = m.uint(coin_reg.O[4:12])
            if direction == "in":
                rng = random.Random(key)
                rom = rom_fn(label, pname, widths, rng) if rom_fn else None
                info.rom = rom if rom is not None else [rng.getrandbits(w) for _ in range(1 << ROM_BITS)]
                idx = m.Register(m.UInt[ROM_BITS], init=0, reset_type=m.Reset)(name=f"beat_{key}")
                pend = m.Register(m.Bit, init=0, reset_type=m.Reset)(name=f"held_{key}")
                # the stream rule: no valid in the first cycle after reset
                live = m.Register(m.Bit, init=0, reset_type=m.Reset)(name=f"live_{key}")
                live.I @= m.bit(1)
                valid = pend.O | ((coin < io.vdensity) & live.O)
                beat = m.mux([m.bits(v, w) for v in info.rom], idx.O + m.uint(io.seed[:ROM_BITS]))
                off = 0
                for leaf, lw in zip(lv, widths):
                    m.wire(beat[off] if isinstance(leaf, m.Digital) else beat[off:off + lw], leaf)
                    off += lw
                p.valid @= valid
                ready = p.ready
                idx.I @= m.mux([idx.O, idx.O + 1], valid & ready)
                pend.I @= valid & ~ready
                m.wire(beat, getattr(io, f"{key}_data"))
            else:
                valid, ready = p.valid, coin < io.rdensity
                p.ready @= ready
                m.wire(_packed(p.data), getattr(io, f"{key}_data"))
            m.wire(valid, getattr(io, f"{key}_valid"))
            m.wire(ready, getattr(io, f"{key}_ready"))
        for key in extras:
            label, pname = extra_src[key]
            m.wire(getattr(insts[label], pname), getattr(io, key))


    class _Bench(m.Circuit):
        io = m.IO(**ports) + m.ClockIO(has_reset=True)
        elaborate(io)

    _Bench.name = name
    return _Bench, infos, extras


@dataclass
class Run:
    seed: int
    vdensity: int
    rdensity: int
    rows: list[dict]          # one dict per cycle: {signal: int}

    def transfers(self, key: str) -> list[int]:
        return [r[f"{key}_data"] for r in self.rows if r[f"{key}_valid"] and r[f"{key}_ready"]]


def fault_ready():
    """fault, set up to run: magma's `ref` submodule reachable (fault reads `m.ref`; after an
    earlier failed `import magma`, e.g. with a PATH lacking `which`, the submodule is in
    sys.modules but not an attribute) and the venv's bin/ first on PATH (fault calls
    `verilator` by name)."""
    import importlib

    import fault
    if not hasattr(m, "ref"):
        m.ref = importlib.import_module("magma.ref")
    from magma_llama.toolchain import tool_env
    os.environ["PATH"] = tool_env()["PATH"]
    return fault


def sram_libraries(directory: Path) -> list[str]:
    """fault's `include_verilog_libraries` for a bench: the models of the external SRAMs
    (stages/sram.py) declared so far, which magma's Verilog leaves as module references."""
    from magma_llama.stages.sram import sram_sources, write_sram_sources
    if not sram_sources():
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    return [write_sram_sources(Path(directory) / "srams.v")]


def printf_format(name: str, n: int) -> str:
    """The printf conversion for an n-bit signal: fault hands the format to the C++ printf and
    passes Verilator's port word: 32 bits up to 32-bit signals, a uint64_t (unsigned long) for
    33..64; wider ones are arrays."""
    if n > 64:
        raise ValueError(f"{name} is {n} bits: fault prints at most 64; list its port in `unprinted`")
    return "%lx" if n > 32 else "%x"


def run_bench(bench, infos: dict, extras: list, runs: list[tuple[int, int, int]], cycles: int,
              directory: Path, flags: tuple = (), unprinted: tuple = ()) -> list[Run]:
    """Simulate `bench` once per (seed, vdensity, rdensity), `cycles` cycles each, in one
    Verilator build; returns the per-cycle signal values.  `flags`: extra Verilator flags
    (a large bench needs `--output-split 0`: Verilator's split files expect precompiled
    headers that fault's make call does not build).  `unprinted`: port keys whose payload
    is not logged (fault prints at most 64 bits of a signal, and a wider one is refused; a
    source's beats are known from its ROM anyway), only their valid and ready."""
    from magma_llama.verilog.emit import MLIR_OPTS
    fault = fault_ready()
    signals = []
    for key in infos:
        signals += [f"{key}_valid", f"{key}_ready"] + ([] if key in unprinted else [f"{key}_data"])
    signals += extras
    formats = [printf_format(s, width(type(getattr(bench, s)).undirected_t)) for s in signals]
    tester = fault.Tester(bench, bench.CLK)
    for n, (seed, vd, rd) in enumerate(runs):
        tester.poke(bench.seed, seed)
        tester.poke(bench.vdensity, vd)
        tester.poke(bench.rdensity, rd)
        tester.poke(bench.RESET, 1)
        tester.step(2)
        tester.step(2)
        tester.poke(bench.RESET, 0)
        tester.print(f"run {n} ;\\n")
        loop = tester.loop(cycles)
        loop.print("c " + " ".join(formats) + " ;\\n", *[getattr(bench, s) for s in signals])
        loop.step(2)
    directory.mkdir(parents=True, exist_ok=True)
    tester.compile_and_run("verilator", directory=str(directory), magma_output="mlir-verilog",
                           magma_opts=MLIR_OPTS, flags=["-Wno-fatal", *flags], skip_compile=False,
                           include_verilog_libraries=sram_libraries(directory), disp_type="on_error")
    log = Path(directory) / "obj_dir" / f"{bench.name}.log"
    out: list[Run] = []
    # fault's log keeps printf output but not always its newlines: records end with ';'
    for line in (rec.strip() for rec in log.read_text().split(";")):
        if line.startswith("run "):
            seed, vd, rd = runs[int(line.split()[1])]
            out.append(Run(seed, vd, rd, []))
        elif line.startswith("c "):
            vals = [int(x, 16) for x in line.split()[1:]]
            out[-1].rows.append(dict(zip(signals, vals)))
    if len(out) != len(runs) or any(len(r.rows) != cycles for r in out):
        raise RuntimeError(f"simulation log {log} is incomplete")
    return out
