"""Reading a whole input file, with the project's one-line errors for missing or unreadable files."""

from __future__ import annotations

import hashlib

from magma_llama.errors import MagmaLlamaError


def read_bytes(path: str, what: str, error: type[MagmaLlamaError]) -> bytes:
    """The file's bytes; `error("<what> not found: path")` and the like when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror}") from None


def file_sha256(path) -> bytes:
    """The SHA-256 digest of a file, read a megabyte at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()
