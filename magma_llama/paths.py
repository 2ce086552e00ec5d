"""Where things live: the checkpoint folders (one setting) and generated output."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS_ENV = "MAGMA_LLAMA_MODELS"
DEFAULT_MODEL = "stories260K.bin"
DEFAULT_TOKENIZER = "tok512.bin"


def model_folders() -> list[Path]:
    """Where checkpoints are looked for, in order: $MAGMA_LLAMA_MODELS alone if set; else the
    project's models/ (which ships the default model), then ../shared/models beside the clone."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return [Path(env)]
    return [REPO / "models", REPO.parent / "shared" / "models"]


def model_file(name: str) -> Path:
    """The first folder's `name` that exists; else where it would be in the first folder."""
    folders = model_folders()
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    return folders[0] / name


def default_model() -> Path:
    return model_file(DEFAULT_MODEL)


def default_tokenizer() -> Path:
    return model_file(DEFAULT_TOKENIZER)


def build_dir() -> Path:
    return Path(os.environ.get("MAGMA_LLAMA_BUILD", REPO / "build"))
