"""Shared plumbing of the block generators: clock/reset IO, registers, naming."""

from __future__ import annotations

import re

import magma as m


def clocked(**ports):
    """IO with the ports plus CLK and a synchronous active-high RESET."""
    return m.IO(**ports) + m.ClockIO(has_reset=True)


def ctrl_reg(T, name: str, init=0, enable: bool = False):
    """Control state (valid bits, counters, pointers): cleared by RESET.  enable=True: a
    clock-enable register, written with `load_when`."""
    return m.Register(T, init=init, reset_type=m.Reset, has_enable=enable)(name=name)


def data_reg(T, name: str, enable: bool = False):
    """Payload storage: no reset, since nothing reads it until a valid bit says so.
    enable=True: a clock-enable register, written with `load_when`."""
    return m.Register(T, has_enable=enable)(name=name)


def load_when(reg, en, value) -> None:
    """reg <= value in the cycles where en is high (a register made with enable=True).

    The same flip-flop as `reg.I @= m.mux([reg.O, value], en)`, but the Verilog says
    `if (en) reg <= value`, so Verilator evaluates a datapath used only by this register in
    those cycles, not every cycle: the payload registers of the wide units load this way."""
    reg.CE @= en
    reg.I @= value


def tag(T) -> str:
    """A short identifier for a payload type, for module names."""
    if issubclass(T, m.Digital):
        return "b1"
    if issubclass(T, m.Bits) and not issubclass(T, (m.UInt, m.SInt)):
        return f"b{len(T)}"
    return re.sub(r"\W+", "_", str(T)).strip("_")


def module_name(kind: str, T, *params, mutant=None, formal=False) -> str:
    parts = [kind, tag(T), *map(str, params)]
    if mutant:
        parts.append(f"mut_{mutant}")
    if formal:
        parts.append("formal")
    return "_".join(parts)


def check_mutant(mutant, table: dict, kind: str) -> None:
    if mutant is not None and mutant not in table:
        raise ValueError(f"{kind}: unknown mutant {mutant!r} (known: {', '.join(table)})")


def any_of(bits):
    out = bits[0]
    for b in bits[1:]:
        out = out | b
    return out


def all_of(bits):
    out = bits[0]
    for b in bits[1:]:
        out = out & b
    return out


def wrap_inc(counter, last):
    """counter + 1, or 0 after its last value (`last` high): a counter that wraps at a bound."""
    return m.mux([counter + 1, m.uint(0, len(counter))], last)


def select(items, idx):
    """items[idx] as a mux on a binary index (one item: itself, no select)."""
    return m.mux(pad_pow2(items), idx) if len(items) > 1 else items[0]


def pad_pow2(items):
    """m.mux selects with a full binary index; repeat the last item to fill it."""
    n = 1
    while n < len(items):
        n *= 2
    return list(items) + [items[-1]] * (n - len(items))
