"""The stages' pipeline shapes and latencies, defined once: the generators build their
pipelines from these tables and the perf model (perf.py) counts their cycles from them.
(Stages not yet listed here have their fixed costs in perf.py's constants.)
Plain Python (no magma), so the perf model and the benchmarks import it cheaply.

MatVec (stages/matvec.py): after a W beat is taken, one register stage each of
`MATVEC_PIPELINE`, with the adder tree's stages (`ADD_LEVELS` adders between registers)
between "term" and "acc"; the last entry, "fifo", is the Y FIFO's entry itself."""

from __future__ import annotations

ARGMAX_LATENCY = 2    # Argmax: the input skid's register, then the O register

EMBED_PIPELINE = (    # Embed (stages/embed.py): a lane's way from the held W beat to O
    "pick",       # the lane's mantissa and shift amount, out of the held beat's L lanes
    "shift_hi",   # shifted by the amount's high bits (left, or right by -k-1)
    "shift_lo",   # ... and by its low bits
    "round",      # the rounding half added (a 64-bit carry chain)
    "out",        # saturated: the O register
)
EMBED_LATENCY = len(EMBED_PIPELINE)     # cycles from a lane's step to its O beat

ROPE_PIPELINE = (     # RoPE (stages/rope.py): a pair's way from v1's transfer to out0 in O
    "pair",       # v0, v1, cos and sin registered together
    "partials",   # the four products' DSP-tile partial products (units.partial_products)
    "products",   # v0*c, v1*s, v0*s, v1*c: the partials added
    "sums",       # v0*c - v1*s and v0*s + v1*c
)
ROPE_LATENCY = len(ROPE_PIPELINE) + 1   # v1's transfer to out0's O.valid (then rshr + sat into O)

ADD_LEVELS = 2        # adder-tree levels between two pipeline registers (two 64-bit adds)
MATVEC_PIPELINE = (
    "read",       # the beat's weights registered; the lane memories read x at the same edge
    "x",          # x registered out of the block RAM
    "partials",   # the DSP tiles' partial products m * x, registered
    "product",    # p = the partials added
    "shift_hi",   # p shifted by the amount's high bits (left, or right by -k-1)
    "shift_lo",   # ... and by its low bits
    "term",       # a right shift's rounding half added: (u >> 1) + u[0]
    "acc",        # the row's accumulator; a row's total registered at its last beat
    "round",      # rshr(total, MATVEC_EXTRA)
    "saturate",   # ... saturated to ACT_BITS
    "fifo",       # into the Y FIFO (from a register: the FIFO's cells are its fan-out)
)


def tree_stages(lanes: int) -> int:
    """Register stages of MatVec's adder tree over `lanes` terms."""
    return -(-(lanes - 1).bit_length() // ADD_LEVELS) if lanes > 1 else 0


def matvec_latency(lanes: int) -> int:
    """Cycles from a row's last W transfer to its Y beat's first valid cycle (FIFO empty)."""
    return len(MATVEC_PIPELINE) + tree_stages(lanes)


def matvec_y_depth(lanes: int) -> int:
    """MatVec's Y FIFO rows: the first power of two at least latency + 2 (full rate with rows
    of one beat: every row in the pipeline has a place)."""
    return 1 << (matvec_latency(lanes) + 1).bit_length()
