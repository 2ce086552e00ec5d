"""Shared fixtures.  Real checkpoints are found through one setting ($MAGMA_LLAMA_MODELS;
else models/, which ships stories260K + tok512, then ../shared/models for the rest); under
CI=true a missing checkpoint fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from magma_llama import paths

CI = os.environ.get("CI", "").lower() == "true"
CLI = [sys.executable, "-m", "magma_llama"]


def _need(path: Path) -> Path:
    if not path.exists():
        msg = f"{path} is missing: set $MAGMA_LLAMA_MODELS or see models/README.md"
        if CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def stories260k() -> tuple[Path, Path]:
    """(checkpoint, tokenizer) of the real stories260K model."""
    return _need(paths.default_model()), _need(paths.default_tokenizer())


@pytest.fixture(scope="session")
def tokenizer32k() -> Path:
    """llama2.c's 32000-entry tokenizer.bin."""
    return _need(paths.model_file("tokenizer.bin"))


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """write_synthetic(shape_name, seed) -> (model, tokenizer) paths, cached per session."""
    from magma_llama.io.synthetic import SHAPES, write_synthetic
    folder = tmp_path_factory.mktemp("synthetic")
    cache: dict = {}

    def make(shape: str = "tiny", seed: int = 0):
        key = (shape, seed)
        if key not in cache:
            cache[key] = write_synthetic(str(folder), SHAPES[shape], seed, name=f"{shape}_{seed}")
        return cache[key]
    return make


def run_cli(*args, check=False) -> subprocess.CompletedProcess:
    """Run `magma-llama ARGS` in a subprocess; returns the CompletedProcess (text mode)."""
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"magma-llama {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def assert_cli_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """The CLI contract for bad input: exit 2, one `error:` line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
