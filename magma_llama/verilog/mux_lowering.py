"""Two-way muxes as a ternary in the emitted Verilog.

magma 2.6's MLIR backend lowers every mux to an array and an index into it
(`hw.array_create` + `hw.array_get`), so `m.mux([a, b], s)` of two 64-bit values is
emitted as `wire [1:0][63:0] t = {{b}, {a}}; ... t[s]`.  Verilator evaluates that
through a temporary array in memory (past 64 bits) or a shift, where `s ? b : a` is a
conditional move; a decoder has hundreds of them on its main clock.  `install()` makes
the backend emit `comb.mux` (printed as a ternary) for every 2-way mux of plain bit
vectors, and leaves wider muxes (n > 2) and aggregate payloads to magma.

Same logic, so every proof and simulation sees the same behaviour.  Measured on
stories260K L=16 w16 (callgrind, 8 tokens): 5788 -> 5055 instructions a cycle by itself,
4736 once MatVec's lane term went back to its plain select (6047 before either change
and the registered token ports)."""

from __future__ import annotations

_installed = False


def install() -> None:
    """Patch magma's `make_mux` (idempotent).  magma is pinned (setup.cfg); a version
    without that hook fails here, loudly, instead of emitting different Verilog."""
    global _installed
    if _installed:
        return
    from magma.backend.mlir import builtin, comb
    from magma.backend.mlir import hardware_module as hm
    if not callable(getattr(hm, "make_mux", None)):
        raise ImportError("magma's MLIR backend has no make_mux: mux_lowering needs magma-lang 2.6.2")
    array_mux = hm.make_mux

    def make_mux(ctx, data, select, result):
        # `data` is highest index first (hw.array_create's order): data[0] is chosen by select = 1
        if (len(data) == 2 and all(isinstance(d.type, builtin.IntegerType) for d in data)
                and isinstance(select.type, builtin.IntegerType) and select.type.n == 1):
            comb.BaseOp(op_name="mux", operands=[select, data[0], data[1]], results=[result])
            return
        array_mux(ctx, data, select, result)

    hm.make_mux = make_mux
    _installed = True
