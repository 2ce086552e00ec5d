"""The stages' pipeline shapes and latencies, defined once: the generators build their
pipelines from these tables and the perf model (perf.py) counts their cycles from them.
(Stages not yet listed here have their fixed costs in perf.py's constants.)
Plain Python (no magma), so the perf model and the benchmarks import it cheaply.

MatVec (stages/matvec.py): after a W beat is taken, one register stage each of
`MATVEC_PIPELINE`, with the adder tree's stages (`ADD_LEVELS` adders between registers)
between "term" and "acc"; the last entry, "fifo", is the Y FIFO's entry itself."""

from __future__ import annotations

from magma_llama.numerics.tables import RECIP_NEWTON, RSQRT_NEWTON

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

# --- the function units' pipelines (stages/units.py, given a `cut`) ------------------------
SHIFT_STAGES = ("amount", "shift_hi", "shift_lo", "round")   # a runtime shift (units.rshr, shift_each):
                                                   # the direction and amount, then units.shift_round:
                                                   # by the amount's high bits, its low bits, rounded


def shift_stages(name: str) -> tuple:
    return tuple(f"{name}_{s}" for s in SHIFT_STAGES)


def product_stages(name: str) -> tuple:
    """units.product: the DSP tiles' partial products, then their sum."""
    return (f"{name}_parts", name)


EXP_NEG_PIPELINE = (  # units.exp_neg: e^x, x <= 0
    "exp_x",      # x clamped to <= 0
    *product_stages("exp_log2e"),      # x * log2(e)
    "exp_y",      # y = rshr(., 30): floor(y), the table index and the remainder r
    "exp_lut",    # the two exp2_lut entries t0, t1 around y's fraction
    "exp_diff",   # t1 - t0
    *product_stages("exp_interp"),     # (t1 - t0) * r
    "exp_v",      # v = t0 + rshr(., frac - k), the shift -floor(y)
    *shift_stages("exp"),              # rshr(v, -floor(y))
)


def newton_stages(i: int) -> tuple:
    """One Newton step of units.recip: y <- rshr(y * (2 - rshr(m y, 30)), 30)."""
    return (*product_stages(f"rcp_nr{i}_my"), f"rcp_nr{i}_d", *product_stages(f"rcp_nr{i}_yd"), f"rcp_nr{i}_y")


RECIP_PIPELINE = (    # units.recip of a 64-bit operand
    "rcp_lead0", "rcp_lead1", "rcp_lead2",   # the leading one n, two halving steps a stage
    *shift_stages("rcp_align"),        # the operand normalised to Q1.30 (shift_each by 30 - n)
    "rcp_norm",   # a rounding carry into bit 31 folded back; the exponent
    "rcp_seed",   # the recip_seed entry (a block RAM's read register)
    "rcp_y0",     # ... registered again: the RAM's output reaches no multiplier directly
    *(st for i in range(RECIP_NEWTON) for st in newton_stages(i)),
    "rcp_out",    # the Scale, normalised
)

def rsqrt_newton_stages(i: int) -> tuple:
    """One Newton step of units.rsqrt: y2 = rshr(y y, 30), d = 3 - rshr(m y2, 30),
    y <- rshr(y d, 31)."""
    return (*product_stages(f"rsq_nr{i}_y2"), f"rsq_nr{i}_y2r", *product_stages(f"rsq_nr{i}_my2"), f"rsq_nr{i}_d",
            *product_stages(f"rsq_nr{i}_yd"), f"rsq_nr{i}_y")


RSQRT_PIPELINE = (    # units.rsqrt of a 64-bit operand (RMSNorm's scale; not used by a stage yet)
    "rsq_lead0", "rsq_lead1", "rsq_lead2",   # the leading one n
    *shift_stages("rsq_align"),        # the operand normalised to [1, 4) by n's parity
    "rsq_norm",   # a rounding carry folded back; the exponent's half
    "rsq_seed",   # the rsqrt_seed entry (a block RAM's read register)
    "rsq_y0",     # ... registered again before the multipliers
    *(st for i in range(RSQRT_NEWTON) for st in rsqrt_newton_stages(i)),
    "rsq_out",    # the Scale, normalised
)

SIGMOID_PIPELINE = (  # units.sigmoid
    "sig_abs",    # -|x| and the sign
    *EXP_NEG_PIPELINE,                 # e = exp_neg(-|x|)
    "sig_one",    # 1 + e
    *RECIP_PIPELINE,                   # recip(1 + e)
    *shift_stages("sig_s"),            # s: the recip's Scale as Q1.30
    *product_stages("sig_es"),         # e * s (x < 0)
    "sig_out",    # s or rshr(e s, 30)
)
SILU_PIPELINE = (*SIGMOID_PIPELINE, *product_stages("silu"), "silu_out")   # units.silu: x * sigmoid(x)

SWIGLU_PIPELINE = (   # SwiGLU (stages/swiglu.py): a pair's way from its transfer into the result FIFO
    "pair",       # h1 and h3 registered
    *SILU_PIPELINE,                    # silu(h1), h3 kept beside it
    *product_stages("gate"),           # silu(h1) * h3
)
SWIGLU_LATENCY = len(SWIGLU_PIPELINE) + 1   # a pair's transfer to its O beat's valid: the stages, then
                                            # rshr + sat into the FIFO (pipeline.Credited)

SAMPLER_Z_PIPELINE = (*product_stages("z"), "z_sat")     # Sampler LOAD: logit * inv_t, then sat(rshr(., 16))
SAMPLER_TERM_PIPELINE = ("word", "diff", *EXP_NEG_PIPELINE)   # Sampler SUM/SEARCH: the block RAM's word
                                                               # registered, sat(z_i - M), exp_neg
SAMPLER_COIN_PIPELINE = ("coin_r", *product_stages("coin"))   # Sampler COIN: r = xorshift32(state) and
                                                               # total registered, then r * total


def sampler_latency(vocab: int, token: int) -> int:
    """Sampler (stages/sampler.py): cycles from a vector's last logit transfer to its token's
    O.valid (the term pipeline empty, O empty when the coin is there)."""
    z, term, coin = len(SAMPLER_Z_PIPELINE), len(SAMPLER_TERM_PIPELINE), len(SAMPLER_COIN_PIPELINE)
    load = z + 2                 # the last z written, `loaded`, then SUM's first cycle
    sum_ = vocab + term          # vocab reads, the last word through the read register and the term pipeline
    coin_ = 1 + coin + 2         # COIN's first cycle, the product, `coin_have`, SEARCH's first cycle
    search = token + 1 + term    # the reads up to the token, its term out of the pipeline
    return load + sum_ + coin_ + search + 1                  # + the O register


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
