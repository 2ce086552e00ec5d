"""How many cycles a token takes on the decoder, from the config and the hardware alone.

The decoder runs its program (decoder/top.py PROGRAM) one op at a time, so a token's
cycles are the sum of its ops' cycles, and each op's cycles follow from the unit it
runs on (docs/stages.md) and the words it takes from the weight port:

- a MatVec op takes its matrix's port words one a cycle (`rows * ceil(cols / L)`; at a
  bandwidth limit of B bytes/cycle, ceil(word_bits / 8) / B cycles a word), plus a few
  cycles after the last word for the result to pass the units behind MatVec (every
  projection finds its vector loaded: MatVec has two vector banks, and the op before
  fills one while it runs, or the vector is kept); an op that keeps the vector (K, V, W3)
  takes its first words during the op before's tail (`AHEAD_GAP`), so that tail is paid
  once;
- an RMSNorm op scales and streams out `dim` elements, `gains_per_word` a cycle (its
  vector was loaded by the op that wrote x: EMB, O or W2), taking a word of gains a beat;
- ATT runs every head at once (one attention unit per head, in lockstep), pos + 1
  positions, then the heads' outputs leave one a cycle, `dim` of them;
- EMB waits for its embedding row (the only memory round trip of a token: the rest
  of the token's weights are prefetched while it runs) and emits `dim` elements.

The named constants are the fixed costs, measured once (stories260K, L = 16, w16,
latency 2: `benchmarks/bandwidth.py`) and explained where they are defined; the model
is checked against the RTL's per-op cycle counters by tests/test_perf_model.py and,
for the whole grid, by docs/performance.md.  The speed limit is the weight port:
`bound_cycles` is a token's port words times the cycles a word needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from magma_llama.decoder.weight_port import PortLayout, weight_bits_per_token
from magma_llama.io.checkpoint import Config
from magma_llama.stages.latency import (ARGMAX_LATENCY, EMBED_LATENCY, ROPE_LATENCY, SWIGLU_LATENCY, matvec_latency,
                                        matvec_y_depth)

# --- fixed costs per op (cycles), measured on the RTL's op counters -----------------------
OP_STEP = 1            # IDLE with the next token already there: the one cycle of the op itself
MATVEC_TAIL = 1        # a MatVec op takes its first word in its first cycle; after the last: MatVec's pipeline
                       # (stages/latency.matvec_latency), then the op's last-result cycle
STAGE_TAIL = 1         # one more registered unit behind MatVec (Residual); SwiGLU: SWIGLU_LATENCY (its
                       # pipeline, stages/latency.SWIGLU_PIPELINE); Argmax: ARGMAX_LATENCY
SWIGLU_IN = 1          # W3: SwiGLU's operands pass a register stage into its clock domain
ROPE_TAIL = ROPE_LATENCY + 1  # RoPE behind MatVec (Q, K): the last pair's pipeline (stages/latency.ROPE_PIPELINE),
                              # out0 into O, then out1 from the spare
NORM_TAIL = 2          # RmsNorm (vector already loaded): SCALE, then the output register
ATT_FIXED = 5          # ATT beyond pos + 1 positions and dim outputs: the readers start, the rows' register
                       # stage (Pipe), V one cycle behind K, recip, the first output's register
EMB_TAIL = 3 + EMBED_LATENCY  # EMB: request register, WREQ transfer, the first word's register, then Embed's
                              # pipeline (stages/latency.EMBED_PIPELINE) to its O register
AHEAD_GAP = 2          # an op whose vector MatVec keeps (K, V, W3) takes its first words while the op before
                       # finishes: from that op's last word, one cycle to move `wop` ahead and load the word
                       # count, one for MatVec to keep its vector; the rest of the op before's tail overlaps,
                       # up to y_depth - AHEAD_GAP of its rows (their Y beats wait in MatVec's Y FIFO; measured
                       # at L=64, one word a row: 14 of a 16-row FIFO)


@dataclass(frozen=True)
class Hardware:
    lanes: int = 16
    bits: int = 16
    latency: int = 2            # weight memory: cycles from a request to its first word
    bytes_per_cycle: int = 0    # weight memory bandwidth; 0 = one port word a cycle


def cycles_per_word(layout: PortLayout, bytes_per_cycle: int) -> float:
    """Cycles the weight memory needs per port word (memory_model.WeightMemory's credit rule)."""
    word_bytes = -(-layout.word_bits // 8)
    return 1.0 if bytes_per_cycle == 0 else max(1.0, word_bytes / bytes_per_cycle)


def op_cycles(cfg: Config, hw: Hardware, pos: float) -> dict[str, float]:
    """Predicted cycles of each op of one token at position `pos` (per-layer ops summed over layers)."""
    layout = PortLayout(cfg, hw.lanes, hw.bits)
    cpw = cycles_per_word(layout, hw.bytes_per_cycle)
    secs = layout.sections
    d, h, nl = cfg.dim, cfg.hidden_dim, cfg.n_layers

    def words(name: str) -> float:
        return secs[f"layer0.{name}" if name not in ("wcls", "rms_final") else name].words * cpw

    # a beat of gains_per_word elements per port word of gains (gains_per_word divides dim)
    norm = secs["rms_final"].words * cpw + NORM_TAIL
    mv_tail = matvec_latency(hw.lanes) + MATVEC_TAIL
    def ahead(tail_before: float, name: str, rows: int) -> float:
        """Cycles an op saves by taking its words during the tail of the op before (decoder/top.py `wop`)."""
        fifo = (matvec_y_depth(hw.lanes) - AHEAD_GAP) * words(name) / rows
        return min(max(0.0, tail_before - AHEAD_GAP), words(name), fifo)

    rope_tail = mv_tail + ROPE_TAIL
    per_layer = {
        "NORM_ATT": norm,
        "Q": words("wq") + rope_tail,
        "K": words("wk") + rope_tail - ahead(rope_tail, "wk", cfg.kv_dim),
        "V": words("wv") + mv_tail - ahead(rope_tail, "wv", cfg.kv_dim),
        "ATT": (pos + 1) + d + ATT_FIXED,      # every head at once; then dim outputs, head after head
        "O": words("wo") + mv_tail + STAGE_TAIL,
        "NORM_FFN": norm,
        "W1": words("w1") + mv_tail,
        "W3": words("w3") + mv_tail + SWIGLU_IN + SWIGLU_LATENCY - ahead(mv_tail, "w3", h),
        "W2": words("w2") + mv_tail + STAGE_TAIL,    # hb loaded MatVec's other vector bank during W3
    }
    emb_words = layout.embedding.words_per_row * cpw
    out = {"IDLE": OP_STEP, "EMB": max(d, emb_words) + hw.latency + EMB_TAIL}
    out.update({k: v * nl for k, v in per_layer.items()})
    out["NORM_FIN"] = norm
    out["CLS"] = words("wcls") + mv_tail + ARGMAX_LATENCY
    return out


def mean_op_cycles(cfg: Config, hw: Hardware, positions: int) -> dict[str, float]:
    """op_cycles averaged over positions 0 .. positions - 1 (only ATT depends on pos, linearly)."""
    return op_cycles(cfg, hw, (positions - 1) / 2)


def token_cycles(cfg: Config, hw: Hardware, positions: int) -> float:
    """Predicted cycles per token, averaged over positions 0 .. positions - 1."""
    return sum(mean_op_cycles(cfg, hw, positions).values())


def bound_cycles(cfg: Config, hw: Hardware) -> float:
    """The speed limit: cycles to stream one token's weights through the port (every weight once)."""
    layout = PortLayout(cfg, hw.lanes, hw.bits)
    return weight_bits_per_token(layout) / layout.word_bits * cycles_per_word(layout, hw.bytes_per_cycle)


__all__ = ["Hardware", "bound_cycles", "cycles_per_word", "mean_op_cycles", "op_cycles", "token_cycles"]
