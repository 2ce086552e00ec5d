"""A small stand-in for the decoder with exactly its ports, to test the RTL harness.

Per position it takes a token (from TOK_IN until the one marked `last`, then its own
previous output, as the decoder does), requests two bursts on the weight port (the
token's embedding row, then the rms_final gains, at decoder/weight_port.py's
addresses), adds up every received word as 16-bit slices, and emits
the low bits of (sum + pos + seed + inv_t) that index a power of two >= vocab_size,
less vocab_size when past it.  `echo_tokens` is the same
computation in Python; `echo_period` is the memory model's timing seen through it.
"""

from __future__ import annotations

import magma as m

from magma_llama.decoder.weight_port import PortLayout
from magma_llama.streams._base import clocked, ctrl_reg, data_reg
from magma_llama.streams.types import StreamIn, StreamOut

SLICE = 16


def _fold(word, bits: int):
    """Sum of the word's 16-bit slices, mod 2^16."""
    acc = m.uint(0, SLICE)
    for lo in range(0, bits, SLICE):
        hi = min(lo + SLICE, bits)
        acc = acc + m.zext_to(m.uint(word[lo:hi]), SLICE) if hi - lo < SLICE else acc + m.uint(word[lo:hi])
    return acc


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def fold(word: int, bits: int) -> int:
    return sum((word >> lo) & 0xFFFF for lo in range(0, bits, SLICE)) & 0xFFFF


class EchoDecoder(m.Generator2):
    def __init__(self, cfg, lanes: int, bits: int, mutant: str | None = None):
        assert mutant in (None, "drop_valid")
        layout = PortLayout(cfg, lanes, bits)
        emb, gains = layout.embedding, layout.sections["rms_final"]
        WB = layout.word_bits
        words = emb.words_per_row + gains.words
        self.name = f"Echo_{cfg.dim}_{cfg.vocab_size}_L{lanes}_w{bits}" + (f"_mut_{mutant}" if mutant else "")
        TokIn = m.Product.from_fields("EchoTokIn", {"token": m.Bits[16], "last": m.Bit})
        WReq = m.Product.from_fields("EchoWReq", {"addr": m.UInt[32], "len": m.UInt[16]})
        self.io = io = clocked(TOK_IN=StreamIn(TokIn), TOK_OUT=StreamOut(m.Bits[16]),
                               WREQ=StreamOut(WReq), WDATA=StreamIn(m.Bits[WB]),
                               inv_t=m.In(m.Bits[31]), seed=m.In(m.Bits[32]))

        token = data_reg(m.UInt[16], "token")
        pos = ctrl_reg(m.UInt[16], "pos")
        prompt_done = ctrl_reg(m.Bit, "prompt_done")
        busy = ctrl_reg(m.Bit, "busy")
        reqs = ctrl_reg(m.UInt[2], "reqs")          # requests still to send: 2 = embedding row, 1 = gains
        left = ctrl_reg(m.UInt[16], "left")         # words still to receive
        acc = ctrl_reg(m.UInt[16], "acc")
        out_valid = ctrl_reg(m.Bit, "out_valid")
        out_data = data_reg(m.UInt[16], "out_data")

        idle = ~busy.O & ~out_valid.O
        tok_ready = idle & ~prompt_done.O
        tok_fire = tok_ready & io.TOK_IN.valid
        io.TOK_IN.ready @= tok_ready
        out_fire = out_valid.O & io.TOK_OUT.ready
        feed_back = out_fire & prompt_done.O
        start = tok_fire | feed_back

        req_valid = busy.O & (reqs.O != 0)
        req_fire = req_valid & io.WREQ.ready
        io.WREQ.valid @= req_valid
        row_addr = m.uint(emb.base, 32) + m.zext_to(token.O, 32) * m.uint(emb.words_per_row, 32)
        io.WREQ.data.addr @= m.mux([m.uint(gains.base, 32), row_addr], reqs.O == 2)
        io.WREQ.data.len @= m.mux([m.uint(gains.words, 16), m.uint(emb.words_per_row, 16)], reqs.O == 2)

        wd_ready = busy.O & (left.O != 0)
        wd_fire = wd_ready & io.WDATA.valid
        io.WDATA.ready @= wd_ready
        summed = acc.O + _fold(io.WDATA.data, WB)
        finish = wd_fire & (left.O == 1)

        token.I @= m.mux([m.mux([token.O, out_data.O], feed_back), m.uint(io.TOK_IN.data.token)], tok_fire)
        prompt_done.I @= prompt_done.O | (tok_fire & io.TOK_IN.data.last)
        busy.I @= m.mux([m.mux([busy.O, m.bit(0)], finish), m.bit(1)], start)
        reqs.I @= m.mux([m.mux([reqs.O, reqs.O - 1], req_fire), m.uint(2, 2)], start)
        left.I @= m.mux([m.mux([left.O, left.O - 1], wd_fire), m.uint(words, 16)], start)
        acc.I @= m.mux([m.mux([acc.O, summed], wd_fire), m.uint(0, 16)], start)
        mixed = summed + pos.O + m.uint(io.seed[:16]) + m.uint(io.inv_t[:16])
        low = mixed & m.uint(_pow2(cfg.vocab_size) - 1, 16)
        folded = m.mux([low, low - m.uint(cfg.vocab_size, 16)], low >= m.uint(cfg.vocab_size, 16))
        out_data.I @= m.mux([out_data.O, folded], finish)
        if mutant == "drop_valid":      # the beat is offered for one cycle only, ready or not
            out_valid.I @= finish
        else:
            out_valid.I @= m.mux([m.mux([out_valid.O, m.bit(0)], out_fire), m.bit(1)], finish)
        pos.I @= m.mux([pos.O, pos.O + 1], finish)
        io.TOK_OUT.valid @= out_valid.O
        io.TOK_OUT.data @= out_data.O


def echo(cfg, lanes: int, bits: int):
    """The build factory (decoder/build.py calls factory(cfg, lanes, bits))."""
    return EchoDecoder(cfg, lanes, bits)


def echo_drop_valid(cfg, lanes: int, bits: int):
    """A mutant that breaks the stream rule on TOK_OUT under backpressure."""
    return EchoDecoder(cfg, lanes, bits, mutant="drop_valid")


def echo_tokens(words: list[int], layout: PortLayout, prompt: list[int], n: int, inv_t: int, seed: int) -> list[int]:
    """The token EchoDecoder emits at each of n positions (prompt forced, then its own output fed back)."""
    emb, gains = layout.embedding, layout.sections["rms_final"]
    vocab, out, token = layout.cfg.vocab_size, [], prompt[0]
    for pos in range(n):
        row = words[emb.base + token * emb.words_per_row:][:emb.words_per_row]
        got = row + words[gains.base:gains.base + gains.words]
        acc = sum(fold(w, layout.word_bits) for w in got)
        y = (acc + pos + seed + inv_t) & (_pow2(vocab) - 1)
        y = y - vocab if y >= vocab else y
        out.append(y)
        token = prompt[pos + 1] if pos + 1 < len(prompt) else y
    return out


def echo_period(layout: PortLayout, latency: int, bytes_per_cycle: int) -> int:
    """Cycles between TOK_OUT beats while the echo feeds itself (TOK_OUT always ready).

    The row request leaves the cycle after the previous beat; its first word is loaded
    latency - 1 cycles later (valid `latency` cycles after the request).  Word k after
    it needs k more words' bytes beyond the credit left by the first, so it is loaded
    ceil(k * word_bytes / bytes_per_cycle) - 1 cycles after the first, and never two in
    one cycle; the beat leaves the cycle after the last word arrives.  Exact when the
    credit is full (one word) at the first word: the wait from the previous token's last
    word (latency + 1 cycles) must earn it, else ValueError."""
    words = layout.embedding.words_per_row + layout.sections["rms_final"].words
    word_bytes = -(-layout.word_bits // 8)
    latency = max(latency, 2)
    last = words - 1
    if bytes_per_cycle:
        if (latency + 1) * bytes_per_cycle < word_bytes:
            raise ValueError("the credit is not full at the first word: no exact prediction")
        last = max(last, -(-last * word_bytes // bytes_per_cycle) - 1)
    return latency + 2 + last
