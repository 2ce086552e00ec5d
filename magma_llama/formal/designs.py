"""The table of designs that `magma-llama prove` and `magma-llama emit` know.

One entry per design: how to build it for proofs (small widths and depths, so a
proof takes seconds), for emission (the sizes a user would instantiate), its
mutants, and the bounds sby uses.  Later stages add rows with `register(...)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from magma_llama.errors import MagmaLlamaError


class UnknownDesignError(MagmaLlamaError):
    """A design or proof name that is not in the table."""


@dataclass(frozen=True)
class Design:
    name: str
    doc: str
    emit: Callable[[], object]                         # () -> circuit, emitted sizes
    formal: Optional[Callable[..., object]] = None     # (mutant=None) -> circuit with properties
    mutants: tuple = ()
    depth: int = 6            # k of k-induction
    cover_depth: int = 14     # cover trace length
    mutant_depth: int = 14    # base-case depth in which a mutant must fail
    extra: dict = field(default_factory=dict)


DESIGNS: dict[str, Design] = {}


def stage_row(name: str, doc: str, gen, emitted: tuple = (), proved: tuple = (), mutants=(),
              formal_kwargs: dict | None = None, **bounds) -> Design:
    """The row of a stage generator: `gen(*emitted)` for emission, `gen(*proved, mutant=...,
    formal=True, **formal_kwargs)` for the proofs; `bounds` are Design's depths."""
    def formal(mutant=None):
        return gen(*proved, mutant=mutant, formal=True, **(formal_kwargs or {}))
    return Design(name, doc, emit=lambda: gen(*emitted), formal=formal, mutants=tuple(mutants), **bounds)


def register(design: Design) -> Design:
    if design.name in DESIGNS:
        raise ValueError(f"design {design.name!r} registered twice")
    DESIGNS[design.name] = design
    return design


def select(names) -> list[Design]:
    """Designs named (all when none); refuses unknown names."""
    _load()
    if not names:
        return list(DESIGNS.values())
    out = []
    for n in names:
        base = n.split(".", 1)[0]
        if base not in DESIGNS:
            raise UnknownDesignError(f"unknown design {n!r} (known: {', '.join(DESIGNS)})")
        d = DESIGNS[base]
        if "." in n and n.split(".", 1)[1] not in d.mutants:
            raise UnknownDesignError(f"unknown mutant {n!r} (known: {', '.join(f'{base}.{x}' for x in d.mutants) or 'none'})")
        if d not in out:
            out.append(d)
    return out


_loaded = False


def _load() -> None:
    """Import the modules that register designs (streams now; datapath stages later)."""
    global _loaded
    if not _loaded:
        _loaded = True
        import magma_llama.formal.stream_designs  # noqa: F401
        import magma_llama.formal.stage_designs  # noqa: F401
