"""Where things live: the checkpoint folder (one setting) and generated output."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS_ENV = "MAGMA_LLAMA_MODELS"
DEFAULT_MODEL = "stories260K.bin"
DEFAULT_TOKENIZER = "tok512.bin"


def models_dir() -> Path:
    """$MAGMA_LLAMA_MODELS if set; else models/ when it holds the default model;
    else ../shared/models when present; else models/."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    own = REPO / "models"
    if (own / DEFAULT_MODEL).exists():
        return own
    shared = REPO.parent / "shared" / "models"
    if (shared / DEFAULT_MODEL).exists():
        return shared
    return own


def default_model() -> Path:
    return models_dir() / DEFAULT_MODEL


def default_tokenizer() -> Path:
    return models_dir() / DEFAULT_TOKENIZER


def build_dir() -> Path:
    return Path(os.environ.get("MAGMA_LLAMA_BUILD", REPO / "build"))
