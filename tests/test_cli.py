"""CLI plumbing: the demo's fallback, doctor, and the error contract for unexpected failures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from magma_llama import toolchain
from tests.conftest import CLI


def test_demo_falls_back_to_synthetic(tmp_path):
    env = dict(os.environ, MAGMA_LLAMA_MODELS=str(tmp_path / "empty"), MAGMA_LLAMA_BUILD=str(tmp_path))
    out = subprocess.run([*CLI, "demo", "-n", "8"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    notes = [l for l in out.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1 and "synthetic" in notes[0]
    assert (tmp_path / "synthetic" / "synthetic.bin").exists()


def test_doctor_reports_every_tool():
    out = subprocess.run([*CLI, "doctor"], capture_output=True, text=True, env=toolchain.tool_env())
    assert out.returncode == 0, out.stdout + out.stderr
    names = [line.split()[1] for line in out.stdout.splitlines()]
    for tool in ("python", "magma", "fault", "coreir", "circt", "verilator", "yosys", "sby", "z3", "nextpnr-ecp5"):
        assert tool in names
    assert all(line.startswith("ok") for line in out.stdout.splitlines())


def test_doctor_names_what_is_missing(tmp_path):
    # in a subprocess: importing magma with an empty PATH leaves it half-initialised, which
    # would break any later magma use in this pytest worker
    code = ("import sys; from pathlib import Path; from magma_llama import toolchain, cli; "
            "toolchain.VENV_BIN = Path(sys.argv[1]); sys.argv = ['magma-llama', 'doctor']; "
            "raise SystemExit(cli.main())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, PATH=str(tmp_path)))
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing or broken:") and "verilator" in err[0] and "nextpnr-ecp5" in err[0]
    assert "Traceback" not in out.stderr


def test_verilator_wrapper_version_parses_for_fault():
    from fault.verilator_utils import verilator_version
    env_path = os.environ["PATH"]
    os.environ["PATH"] = toolchain.tool_env()["PATH"]
    try:
        assert verilator_version() >= 5.0
    finally:
        os.environ["PATH"] = env_path


def test_version_and_help():
    assert subprocess.run([*CLI, "--version"], capture_output=True, text=True).stdout.startswith("magma-llama")
    out = subprocess.run([*CLI], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error:")


@pytest.mark.parametrize("ci,expect_rc,word", [("true", 1, "error"), ("", 0, "skipped")])
def test_missing_checkpoint_fails_under_ci_and_skips_otherwise(tmp_path, ci, expect_rc, word):
    env = dict(os.environ, MAGMA_LLAMA_MODELS=str(tmp_path / "none"), CI=ci)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                          "tests/test_checkpoint.py::test_real_header"],
                         capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == expect_rc, out.stdout
    assert f"1 {word}" in out.stdout
