"""Reading a whole input file, with the project's one-line errors for missing or unreadable files."""

from __future__ import annotations

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
