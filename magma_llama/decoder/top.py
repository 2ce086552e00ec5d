"""The decoder top: one token in, one token out, weights through a memory-read port.

The forward pass is the program below (`PROGRAM`), one op at a time, as run.c's
forward() reads ("mv" is the MatVec engine's vector register):

    EMB       x  = embedding row of the token                       (Embed)
    per layer:
    NORM_ATT  mv = rmsnorm(x, rms_att), N elements a cycle           (RmsNorm)
    Q         q  = rope(wq mv), head h into attention unit h's query (MatVec, Rope)
    K         k_cache[l, pos] = rope(wk mv)      (mv kept)           (MatVec, Rope)
    V         v_cache[l, pos] = wv mv            (mv kept)           (MatVec)
    ATT       mv = attention(q[h], k/v_cache[l, 0..pos, h // kv_mul]), all heads at once
    O         x  = x + wo mv                                         (MatVec, Residual)
    NORM_FFN  mv = rmsnorm(x, rms_ffn)
    W1        hb = w1 mv
    W3        hb = swiglu(hb, w3 mv)             (mv kept)           (MatVec, SwiGlu)
    W2        x  = x + w2 hb                     (hb loaded into mv) (MatVec, Residual)
    NORM_FIN  mv = rmsnorm(x, rms_final)
    CLS       token = argmax or sample(wcls mv)                      (MatVec, Argmax/Sampler)

Every arrow between units is a ready/valid stream; the controller only chooses, per
op, which buffer feeds which unit and where the result goes (a table indexed by the
op register), and moves on when the op's last result is delivered.  Results that feed
the next projection go straight into MatVec's vector register, so a projection starts
with its vector loaded (a norm's N-element beats enter through MatVec's wide port, N
the gains a port word holds: PortLayout.gains_per_word).  The weights are requested ahead: after a token's embedding
row, the rest of the token's weights are one contiguous range (the image is in stream
order), asked for in bursts of at most MAX_BURST words and consumed op by op.  The
layer loop reuses the same units with the layer index in the KV-cache addresses.

Attention has one unit per head, run in lockstep: the KV cache is one memory per KV
head, all read at the same position, and each position's K and V rows are forked to
every unit (head h takes KV head h // kv_mul's row), so ATT takes pos + 1 positions
once, not once per head; the queries were loaded during Q, and the heads' outputs are
then taken head after head into MatVec's vector.

Ports (the contract of decoder/sim.py and the harness):
- `TOK_IN` {token, last}: prompt tokens, BOS first, `last` on the final one; after it
  the decoder feeds its own sampled token back.
- `TOK_OUT`: the token chosen at each position (forced positions included).
  Both token ports are registered (a skid buffer each): a beat enters a cycle after it is
  offered, and leaves a cycle after the decoder chose it.
- `WREQ` {addr, len} / `WDATA`: the weight port (decoder/weight_port.py's layout).
- `inv_t` (0 = greedy, else 1/T in Q15.16) and `seed` (the PRNG state at reset).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import magma as m

from magma_llama.decoder.weight_port import ADDR_BITS, GAIN_ENTRY_BITS, LEN_BITS, PortLayout
from magma_llama.io.checkpoint import Config
from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.numerics.weights import EXP_BITS, GAIN_BITS
from magma_llama.streams._base import any_of, clocked, ctrl_reg, data_reg, load_when, pad_pow2, select, wrap_inc
from magma_llama.streams.chain import S, connect
from magma_llama.streams.fork import Fork
from magma_llama.streams.pipe import Pipe
from magma_llama.streams.skid import Skid
from magma_llama.streams.types import StreamIn, StreamOut, clog2

TOKEN_BITS = 16
MAX_BURST = 4096
ACT = m.Bits[ACT_BITS]


@dataclass(frozen=True)
class Op:
    name: str
    weights: str | None = None   # section (per layer: "layer0.<name>"), or "embedding row"
    aux: str | None = None       # buffer streamed as the second operand (Residual A / SwiGlu H1)
    dst: str | None = None       # where the results go; "matvec": into MatVec's vector for the next op
    keep_x: bool = False         # MatVec reuses the previous op's vector
    to_norm: bool = False        # the results also load RmsNorm's vector (the next op normalises x)
    per_layer: bool = False


PROGRAM = [
    Op("IDLE"),
    Op("EMB", weights="embedding row", dst="x", to_norm=True),
    Op("NORM_ATT", "rms_att", dst="matvec", per_layer=True),
    Op("Q", "wq", dst="attention", per_layer=True),
    Op("K", "wk", dst="k_cache", keep_x=True, per_layer=True),
    Op("V", "wv", dst="v_cache", keep_x=True, per_layer=True),
    Op("ATT", None, dst="matvec", per_layer=True),
    Op("O", "wo", aux="x", dst="x", to_norm=True, per_layer=True),
    Op("NORM_FFN", "rms_ffn", dst="matvec", per_layer=True),
    Op("W1", "w1", dst="hb", per_layer=True),
    Op("W3", "w3", aux="hb", dst="matvec", keep_x=True, per_layer=True),
    Op("W2", "w2", aux="x", dst="x", to_norm=True, per_layer=True),
    Op("NORM_FIN", "rms_final", dst="matvec"),
    Op("CLS", "wcls", dst="token"),
]
OPS = {op.name: i for i, op in enumerate(PROGRAM)}
OP_BITS = clog2(len(PROGRAM))
MATVEC_OPS = ("Q", "K", "V", "O", "W1", "W3", "W2", "CLS")
NORM_OPS = ("NORM_ATT", "NORM_FFN", "NORM_FIN")


def check_config(cfg: Config, lanes: int, bits: int) -> PortLayout:
    """The port layout, or a one-line error for a config this hardware cannot run."""
    from magma_llama.decoder.weight_port import UnsupportedHardwareError
    layout = PortLayout(cfg, lanes, bits)
    if cfg.vocab_size > 1 << TOKEN_BITS:
        raise UnsupportedHardwareError(f"vocab_size {cfg.vocab_size} does not fit the {TOKEN_BITS}-bit token port")
    return layout


def op_shapes(cfg: Config) -> dict[str, tuple[int, int]]:
    """(results delivered, MatVec rows) per op.  An op whose results load MatVec's vector
    (dst "matvec") delivers that vector's length."""
    d, h, kv, v = cfg.dim, cfg.hidden_dim, cfg.kv_dim, cfg.vocab_size
    return {"IDLE": (1, 0), "EMB": (d, 0), "NORM_ATT": (d, 0), "Q": (d, d), "K": (kv, kv), "V": (kv, kv),
            "ATT": (d, 0), "O": (d, d), "NORM_FFN": (d, 0), "W1": (h, h), "W3": (h, h), "W2": (d, d),
            "NORM_FIN": (d, 0), "CLS": (1, v)}


@dataclass
class _Merged:
    """A stream driven by whichever of several units' outputs is selected (valid and data)."""
    valid: object
    data: object


class Decoder(m.Generator2):
    def __init__(self, cfg: Config, lanes: int = 16, bits: int = 16, clock_gating: bool = True):
        """clock_gating=False: every unit on CLK (the same decoder, cycle for cycle: a test
        compares the two)."""
        from magma_llama.stages.argmax import Argmax
        from magma_llama.stages.clock_gate import gated_clock
        from magma_llama.stages.attention import Attention
        from magma_llama.stages.embed import Embed
        from magma_llama.stages.matvec import MatVec
        from magma_llama.stages.residual import Residual
        from magma_llama.stages.rmsnorm import RmsNorm
        from magma_llama.stages.rope import Rope
        from magma_llama.stages.sampler import Sampler
        from magma_llama.stages.sram import Sram
        from magma_llama.stages.swiglu import SwiGlu

        layout = check_config(cfg, lanes, bits)
        secs = layout.sections
        d, hd, hs = cfg.dim, cfg.hidden_dim, cfg.head_size
        nl, nh, nkv, seq, vocab = cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.seq_len, cfg.vocab_size
        L, WB, N = lanes, layout.word_bits, layout.gains_per_word
        self.name = f"Decoder_{cfg.dim}_{cfg.hidden_dim}_{nl}_{nh}_{nkv}_{vocab}_{seq}" + (
            "" if cfg.shared_classifier else "_u") + f"_L{L}_w{bits}" + ("" if clock_gating else "_ungated")
        TokIn = m.Product.from_fields(f"TokIn{TOKEN_BITS}", {"token": m.Bits[TOKEN_BITS], "last": m.Bit})
        WReq = m.Product.from_fields("WReq", {"addr": m.UInt[ADDR_BITS], "len": m.UInt[LEN_BITS]})
        self.io = io = clocked(TOK_IN=StreamIn(TokIn), TOK_OUT=StreamOut(m.Bits[TOKEN_BITS]),
                               WREQ=StreamOut(WReq), WDATA=StreamIn(m.Bits[WB]),
                               inv_t=m.In(m.Bits[31]), seed=m.In(m.Bits[32]))

        # ---- controller state -------------------------------------------------------------
        op = ctrl_reg(m.UInt[OP_BITS], "op")
        fresh = ctrl_reg(m.Bit, "fresh")             # the first cycle of an op
        # the op whose weight words MatVec is taking: `op`, or (ahead) the op after it when that
        # op reuses the vector (K after Q, V after K, W3 after W1) and `op`'s words are all in:
        # its rows stream while `op`'s last results pass MatVec's pipeline and the units behind
        wop = ctrl_reg(m.UInt[OP_BITS], "wop")
        ahead = ctrl_reg(m.Bit, "ahead")
        run_ahead = m.Bit()                          # wop moves ahead this cycle (driven below)
        layer = ctrl_reg(m.UInt[clog2(nl)], "layer")
        pos = ctrl_reg(m.UInt[clog2(seq)], "pos")
        prompt_done = ctrl_reg(m.Bit, "prompt_done")
        token = data_reg(m.Bits[TOKEN_BITS], "token")

        def is_op(*names):
            return any_of([op.O == OPS[n] for n in names])

        def is_wop(*names):
            return any_of([wop.O == OPS[n] for n in names])

        def table(values: dict, bits_: int, default: int = 0, by=None):
            """A per-op constant, selected by the op register (the program ROM), or by `by`."""
            vals = [m.uint(values.get(o.name, default), bits_) for o in PROGRAM]
            return m.mux(pad_pow2(vals), op.O if by is None else by)

        shapes = op_shapes(cfg)
        # run.c consults its sampler only after the prompt: a forced position takes the
        # argmax path (its token is ignored), so the PRNG steps once per sampled token
        forced = ctrl_reg(m.Bit, "forced")
        # inv_t is held steady by the host; a register copy keeps the sampler's arithmetic on
        # it out of the simulator's input-evaluation pass (it takes effect a cycle later)
        inv_t = data_reg(m.Bits[31], "inv_t_q")
        inv_t.I @= io.inv_t
        greedy = (inv_t.O == 0) | forced.O

        # ---- units ------------------------------------------------------------------------
        max_cols, max_rows = max(d, hd), max(d, hd, vocab)
        # RmsNorm leaves N elements a cycle (N gains a port word), straight into MatVec's wide port
        mv = MatVec(L, bits, max_cols, max_rows, dynamic=True, wide=N)(name="matvec")
        norm = RmsNorm(d, lanes=N)(name="rmsnorm")
        emb = Embed(L, bits, d)(name="embed")
        rope = Rope(hs, seq)(name="rope")
        atts = [Attention(hs, seq)(name=f"attention_h{h}") for h in range(nh)]
        res = Residual()(name="residual")
        glu = SwiGlu()(name="swiglu")
        amax = Argmax(vocab)(name="argmax")
        smp = Sampler(vocab)(name="sampler")
        # the length of the vector an op loads into MatVec's other bank (for the next op)
        mv.load_cols @= table({o.name: shapes[o.name][0] for o in PROGRAM if o.dst == "matvec"},
                              len(mv.load_cols))
        mv.n_rows @= table({k: s[1] for k, s in shapes.items()}, len(mv.n_rows), by=wop.O)
        mv.keep_x @= is_wop(*[o.name for o in PROGRAM if o.keep_x])
        # MatVec's rows of the op after (ahead) wait in its Y FIFO until op reaches it: an op
        # takes its own rows' Y beats and no more, and none in its first cycle (the results'
        # counters start then, as for every op)
        y_cnt = ctrl_reg(m.UInt[clog2(max_rows + 1)], "y_taken")
        y_room = ~fresh.O & (y_cnt.O != table({k: v[1] for k, v in shapes.items()}, len(y_cnt.O)))
        y_valid = mv.Y.valid & y_room
        mv_y = _Merged(y_valid, mv.Y.data)
        rope.pos @= pos.O
        for a in atts:
            a.pos @= pos.O

        # a unit idle for most of a token runs on a gated clock (stages/clock_gate.py): only in
        # the ops that use it (and in RESET).  Each is quiescent outside them: an op ends when
        # its last result has left, and nothing else moves a unit's state
        def clock_only_in(name, units, *ops, also=None):
            """`also`: a further enable, for a unit that needs only some cycles of an op."""
            en = io.RESET | is_op(*ops)
            if also is not None:
                en = en | also
            gclk = gated_clock(f"{name}_clock", io.CLK, en) if clock_gating else io.CLK
            for u in units:
                u.CLK @= gclk
                u.RESET @= io.RESET
            return gclk

        clock_only_in("embed", [emb], "EMB")
        # RoPE and Residual stay on CLK (wired by magma, as MatVec): a clock domain costs the
        # simulator its trigger and scheduling on every evaluation, more than these small
        # units' idle logic (callgrind, stories260K L16 w16: 1.6% fewer instructions a cycle)
        # SwiGLU's operands (hb from its buffer, W3's rows from MatVec) enter its domain through
        # register stages, so its silu is evaluated on its own clock's edges only
        glu_in = {n: Pipe(ACT)(name=f"swiglu_{n.lower()}_pipe") for n in ("H1", "H3")}
        clock_only_in("swiglu", [glu, *glu_in.values()], "W3")
        for n, pipe in glu_in.items():
            connect(pipe.O, getattr(glu, n))
        clock_only_in("classifier", [amax, smp], "CLS")
        smp.inv_t @= inv_t.O
        smp.seed @= io.seed

        # ---- buffers ----------------------------------------------------------------------
        def buffer(name, depth):
            s = Sram(depth, ACT_BITS)(name=name)
            s.CLK @= io.CLK
            return s
        bufs = {"x": buffer("x", d), "hb": buffer("hb", hd)}
        # the KV cache: one memory per KV head, a row (layer, t) holding that head's hs elements
        kv_rows = nl * seq
        # (block RAM: a registered read with a read enable, the reader's output register)
        # (its read port on the attention units' clock when they are gated: a simulator then
        # evaluates their arithmetic, which reads the rows, only on that clock's edges)
        caches = {n: [Sram(kv_rows, hs * ACT_BITS, registered=True, read_enable=True,
                           read_clock=clock_gating)(name=f"{n}{k}")
                      for k in range(nkv)]
                  for n in ("k_cache", "v_cache")}
        for banks in caches.values():
            for c in banks:
                c.CLK @= io.CLK

        # ---- op sequencing ----------------------------------------------------------------
        # the token ports are registered (skid buffers, full rate): no combinational path runs
        # from a pin into the decoder, so the weight port never waits on TOK_OUT.ready, and a
        # simulator evaluates nothing when only the inputs change
        tok_in = S(io.TOK_IN).skid("tok_in_skid").port
        tok_out = Skid(m.Bits[TOKEN_BITS])(name="tok_out_skid")
        connect(tok_out.O, io.TOK_OUT)
        take_in = is_op("IDLE") & ~prompt_done.O & tok_in.valid
        tok_in.ready @= is_op("IDLE") & ~prompt_done.O
        tok_valid = m.mux([amax.O.valid, smp.O.valid], ~greedy) & is_op("CLS")
        tok_data = m.mux([m.zext_to(m.bits(amax.O.data), TOKEN_BITS), m.zext_to(m.bits(smp.O.data), TOKEN_BITS)],
                         ~greedy)
        tok_fire = tok_valid & tok_out.I.ready
        tok_out.I.valid @= tok_valid
        tok_out.I.data @= tok_data
        amax.O.ready @= tok_out.I.ready & greedy & is_op("CLS")
        smp.O.ready @= tok_out.I.ready & ~greedy & is_op("CLS")
        token.I @= m.mux([m.mux([token.O, tok_data], tok_fire), tok_in.data.token], take_in)
        prompt_done.I @= prompt_done.O | (take_in & tok_in.data.last)
        forced.I @= m.mux([forced.O, ~tok_in.data.last], take_in) & ~(is_op("IDLE") & prompt_done.O)

        # the writer: every op's results, one per beat, into its destination
        n_out_m1 = table({k: (s[0] // N if k in NORM_OPS else s[0]) - 1 for k, s in shapes.items()},
                         clog2(max(d, hd) + 1))
        w_cnt = ctrl_reg(m.UInt[clog2(max(d, hd) + 1)], "w_cnt")
        def head_counters(prefix):
            """(element, head) registers of results that come head after head, hs a head, from
            0 at an op's first cycle; `count(fire)` advances them by the beats that fire."""
            elem = ctrl_reg(m.UInt[clog2(hs)], f"{prefix}_elem")
            head = ctrl_reg(m.UInt[clog2(nh)], f"{prefix}_head")

            def count(fire):
                last = elem.O == (hs - 1)
                elem.I @= m.mux([m.mux([elem.O, wrap_inc(elem.O, last)], fire), m.uint(0, len(elem.O))], fresh.O)
                head.I @= m.mux([m.mux([head.O, head.O + 1], fire & last), m.uint(0, len(head.O))], fresh.O)
                return last
            return elem, head, count

        # the heads' outputs, head after head: the unit whose turn it is drives the stream
        _, o_head, count_out = head_counters("att_out")
        att_out = _Merged(select([a.O.valid for a in atts], o_head.O), select([a.O.data for a in atts], o_head.O))
        # a norm's beats of N elements go to MatVec's wide port XN (below), not through w_data
        norm_out = _Merged(norm.O.valid, m.bits(0, ACT_BITS))
        sources = {  # op -> the stream its results arrive on
            "EMB": emb.O, "NORM_ATT": norm_out, "NORM_FFN": norm_out, "NORM_FIN": norm_out,
            "Q": rope.O, "K": rope.O, "V": mv_y, "W1": mv_y, "ATT": att_out,
            "O": res.O, "W2": res.O, "W3": glu.O,
        }
        w_valid = any_of([is_op(o) & s.valid for o, s in sources.items()])
        w_data = m.mux(pad_pow2([sources[o.name].data if o.name in sources else m.bits(0, ACT_BITS)
                                 for o in PROGRAM]), op.O)
        # results bound for MatVec's vector wait for it; buffers always take them
        to_matvec = is_op(*[o.name for o in PROGRAM if o.dst == "matvec"])
        to_norm = is_op(*[o.name for o in PROGRAM if o.to_norm])
        # Q's results go to the query of head w_head (w_head: the head, or KV head, of the
        # result being written during Q, K and V; w_elem: its element)
        w_elem, w_head, count_written = head_counters("w")
        q_ready = select([a.Q.ready for a in atts], w_head.O)
        # (MatVec's X and XN are ready together: either port loads the free bank)
        sink_ready = (~to_matvec | mv.X.ready) & (~to_norm | norm.X.ready) & (~is_op("Q") | q_ready)
        w_fire = w_valid & sink_ready
        # RmsNorm's vector loads while EMB, O and W2 write x, one element in the cycles where one
        # is written: its clock runs in those cycles and in the norms (it has no other state
        # to move), so its lanes' arithmetic is evaluated only then
        norm_clk = clock_only_in("rmsnorm", [norm], *NORM_OPS, also=w_valid & to_norm)
        # the attention units (and their rows' Pipe and Fork) run in ATT, and in the cycles of Q in
        # which a query element is offered (their only state change in Q)
        att_clk = clock_only_in("attention", atts, "ATT", also=w_valid & is_op("Q"))
        for stream in {id(s): s for s in sources.values()}.values():
            # (a _Merged stream's ready is driven per unit below; MatVec's Y per op at the end)
            if stream is not mv.Y and not isinstance(stream, _Merged):
                stream.ready @= any_of([is_op(o) for o, s in sources.items() if s is stream]) & sink_ready
        for h, a in enumerate(atts):
            a.Q.valid @= w_valid & is_op("Q") & (w_head.O == h)
            a.Q.data @= w_data
            a.O.ready @= is_op("ATT") & sink_ready & (o_head.O == h)
        count_out(is_op("ATT") & att_out.valid & sink_ready)
        last_result = w_fire & (w_cnt.O == n_out_m1)
        w_cnt.I @= m.mux([m.mux([w_cnt.O, w_cnt.O + 1], w_fire), m.uint(0, len(w_cnt.O))], fresh.O | last_result)

        done = m.mux([last_result, tok_fire], is_op("CLS"))
        done = m.mux([done, take_in | (is_op("IDLE") & prompt_done.O)], is_op("IDLE"))
        last_layer = layer.O == (nl - 1)
        nxt = m.mux([op.O + 1, m.uint(OPS["NORM_ATT"], OP_BITS)], is_op("W2") & ~last_layer)
        nxt = m.mux([nxt, m.uint(OPS["IDLE"], OP_BITS)], is_op("CLS"))
        op.I @= m.mux([op.O, nxt], done)
        fresh.I @= done
        # wop follows op, unless it ran ahead (then op catches up with it: ahead clears)
        wop_next = m.mux([m.mux([wop.O, nxt], done & ~ahead.O), op.O + 1], run_ahead)
        wop.I @= wop_next
        ahead.I @= m.mux([ahead.O & ~fresh.O, m.bit(1)], run_ahead)     # held into op's first cycle
        layer.I @= m.mux([layer.O, m.mux([layer.O + 1, m.uint(0, len(layer.O))], last_layer)],
                         done & is_op("W2"))
        pos.I @= m.mux([pos.O, pos.O + 1], done & is_op("CLS"))

        # ---- weight fetch: bursts of at most MAX_BURST words ------------------------------
        # the token's embedding row first (its address needs the token)
        A = m.UInt[ADDR_BITS]
        base = m.uint(layout.embedding.base, ADDR_BITS) + m.zext_to(m.uint(token.O), ADDR_BITS) * m.uint(
            layout.embedding.words_per_row, ADDR_BITS)
        f_addr = ctrl_reg(A, "f_addr")
        f_left = ctrl_reg(A, "f_left")
        rq_valid = ctrl_reg(m.Bit, "wreq_valid")
        rq_addr = data_reg(A, "wreq_addr")
        rq_len = data_reg(m.UInt[LEN_BITS], "wreq_len")
        can_load = ~rq_valid.O | io.WREQ.ready
        load = can_load & (f_left.O != 0)
        chunk = m.mux([f_left.O, m.uint(MAX_BURST, ADDR_BITS)], f_left.O > MAX_BURST)
        rq_valid.I @= load | (rq_valid.O & ~io.WREQ.ready)
        rq_addr.I @= m.mux([rq_addr.O, f_addr.O], load)
        rq_len.I @= m.mux([rq_len.O, chunk[:LEN_BITS]], load)
        # a token's weights after its embedding row are one contiguous range in stream order
        # (every layer, rms_final, wcls): requested right after the row, so the memory's
        # latency is paid once per token and each op finds its words waiting
        order = [s for s in secs.values() if s.name != "embedding"]
        assert all(a.base + a.words == b.base for a, b in zip(order, order[1:])) and order[0].base == 0
        main_len = order[-1].base + order[-1].words
        main_pending = ctrl_reg(m.Bit, "main_pending")
        start_main = can_load & (f_left.O == 0) & main_pending.O & ~fresh.O
        main_pending.I @= m.mux([main_pending.O & ~start_main, m.bit(1)], fresh.O & is_op("EMB"))
        f_addr.I @= m.mux([m.mux([m.mux([f_addr.O, f_addr.O + chunk], load), m.uint(0, ADDR_BITS)], start_main),
                           base], fresh.O & is_op("EMB"))
        f_left.I @= m.mux([m.mux([m.mux([f_left.O, f_left.O - chunk], load), m.uint(main_len, ADDR_BITS)],
                                 start_main), m.uint(layout.embedding.words_per_row, ADDR_BITS)],
                          fresh.O & is_op("EMB"))
        io.WREQ.valid @= rq_valid.O
        io.WREQ.data.addr @= rq_addr.O
        io.WREQ.data.len @= rq_len.O

        # ---- weight words to the units ----------------------------------------------------
        word = io.WDATA.data
        for unit in (mv, emb):
            for j in range(L):
                unit.W.data.mant[j] @= word[j * bits:(j + 1) * bits]
                unit.W.data.exp[j] @= word[L * bits + j * EXP_BITS:L * bits + (j + 1) * EXP_BITS]
        is_mv = is_wop(*MATVEC_OPS)
        is_norm = is_op(*NORM_OPS)
        # the words are prefetched, so an op must take exactly its own: a per-op count of the
        # words still owed delimits the ops in the word stream
        op_words = {}
        for o in PROGRAM:
            if o.weights == "embedding row":
                op_words[o.name] = layout.embedding.words_per_row
            elif o.weights:
                op_words[o.name] = secs[f"layer0.{o.weights}" if o.per_layer else o.weights].words
        # (an op may take its first word in its first cycle: the count is loaded then)
        owed = ctrl_reg(A, "words_owed")
        owed_now = m.mux([owed.O, table(op_words, ADDR_BITS)], fresh.O & ~ahead.O)
        w_in = io.WDATA.valid & (owed_now != 0)
        mv.W.valid @= w_in & is_mv
        emb.W.valid @= w_in & is_op("EMB")
        # gains: a word holds the N gains of one RMSNorm beat.  They enter RmsNorm's clock domain
        # through a register stage (Pipe), so its lanes read a register of their own domain, not
        # the port word that changes every cycle (no cycle is lost: the first word enters it in the
        # op's first cycle, while RmsNorm forms its scale)
        gains = Pipe(m.Bits[N * GAIN_ENTRY_BITS])(name="gain_pipe")
        gains.CLK @= norm_clk
        gains.RESET @= io.RESET
        gains.I.valid @= w_in & is_norm
        gains.I.data @= word[:N * GAIN_ENTRY_BITS]
        for j in range(N):
            entry = gains.O.data[j * GAIN_ENTRY_BITS:(j + 1) * GAIN_ENTRY_BITS]
            norm.G.data[j].mant @= entry[:GAIN_BITS]
            norm.G.data[j].exp @= entry[GAIN_BITS:]
        norm.G.valid @= gains.O.valid
        gains.O.ready @= norm.G.ready
        wd_ready = (owed_now != 0) & ((is_mv & mv.W.ready) | (is_op("EMB") & emb.W.ready) | (is_norm & gains.I.ready))
        io.WDATA.ready @= wd_ready
        # run ahead: op's words are all taken and the next op reuses MatVec's vector
        ahead_ops = {o.name: PROGRAM[i + 1] for i, o in enumerate(PROGRAM[:-1]) if PROGRAM[i + 1].keep_x}
        next_words = table({k: op_words[n.name] for k, n in ahead_ops.items()}, ADDR_BITS)
        run_ahead @= is_op(*ahead_ops) & ~fresh.O & ~ahead.O & ~done & (owed.O == 0)
        owed.I @= m.mux([m.mux([owed_now, owed_now - 1], io.WDATA.valid & wd_ready), next_words], run_ahead)

        # ---- buffer readers ---------------------------------------------------------------
        def reader(name, ops: dict[str, int], ready):
            """Streams n elements (n per op) of a buffer from index 0 during those ops:
            (index register, active register)."""
            ib = clog2(max(d, hd) + 1)
            idx = ctrl_reg(m.UInt[ib], f"{name}_idx")
            active = ctrl_reg(m.Bit, f"{name}_active")
            fire = active.O & ready
            last = idx.O == table({k: v - 1 for k, v in ops.items()}, ib)
            idx.I @= m.mux([m.mux([idx.O, idx.O + 1], fire), m.uint(0, ib)], fresh.O | (fire & last))
            active.I @= m.mux([active.O & ~(fire & last), any_of([is_op(o) for o in ops])], fresh.O)
            return idx, active

        aux_ops = {o.name: (hd if o.aux == "hb" else d) for o in PROGRAM if o.aux}
        x_idx, x_act = reader("aux", aux_ops, m.mux([res.A.ready, glu_in["H1"].I.ready], is_op("W3")))

        def by_op(values: dict, default):
            return m.mux(pad_pow2([values.get(o.name, default) for o in PROGRAM]), op.O)

        aux_data = by_op({o.name: bufs[o.aux].RDATA for o in PROGRAM if o.aux}, m.bits(0, ACT_BITS))
        norm.X.valid @= w_valid & to_norm         # the x buffer beside it is always ready
        norm.X.data @= w_data
        mv.X.valid @= w_valid & to_matvec & ~is_norm
        mv.X.data @= w_data
        mv.XN.valid @= norm.O.valid & is_norm
        mv.XN.data @= norm.O.data
        norm.O.ready @= is_norm & sink_ready
        res.A.valid @= x_act.O & is_op("O", "W2")
        res.A.data @= aux_data
        glu_in["H1"].I.valid @= x_act.O & is_op("W3")
        glu_in["H1"].I.data @= aux_data

        # MatVec results: to RoPE, the writer, the residual, SwiGLU or the token choice
        rope.I.valid @= y_valid & is_op("Q", "K")
        rope.I.data @= mv.Y.data
        res.B.valid @= y_valid & is_op("O", "W2")
        res.B.data @= mv.Y.data
        glu_in["H3"].I.valid @= y_valid & is_op("W3")
        glu_in["H3"].I.data @= mv.Y.data
        amax.I.valid @= y_valid & is_op("CLS") & greedy
        amax.I.data @= mv.Y.data
        smp.I.valid @= y_valid & is_op("CLS") & ~greedy
        smp.I.data @= mv.Y.data
        mv_y_ready = (is_op("Q", "K") & rope.I.ready) | is_op("V", "W1") | (is_op("O", "W2") & res.B.ready) | (
            is_op("W3") & glu_in["H3"].I.ready) | (is_op("CLS") & m.mux([amax.I.ready, smp.I.ready], ~greedy))
        mv.Y.ready @= mv_y_ready & y_room
        y_cnt.I @= m.mux([m.mux([y_cnt.O, y_cnt.O + 1], y_valid & mv_y_ready), m.uint(0, len(y_cnt.O))], fresh.O)

        # ---- K/V cache readers for attention: row (layer, t) of every KV head, t = 0..pos,
        # forked to every unit (head h takes KV head h // kv_mul's part)
        rb = clog2(kv_rows)

        def kv_row(t):
            return m.bits(m.zext_to(layer.O, rb) * m.uint(seq, rb) + m.zext_to(t, rb))[:rb]

        kv_mul = nh // nkv
        for cname, port in (("k_cache", "K"), ("v_cache", "V")):
            t = ctrl_reg(m.UInt[clog2(seq)], f"{cname}_t")
            active = ctrl_reg(m.Bit, f"{cname}_active")
            # the memories' read registers are the rows' register stage (a block RAM reads into
            # its output register): a row is read when that register is free or being taken, and
            # `rvalid` says it holds one.  The heads' arithmetic thus reads only registers, which
            # change only in the cycles of ATT
            Row = m.Bits[hs * ACT_BITS]
            rvalid = ctrl_reg(m.Bit, f"{cname}_rvalid")
            fork = Fork(Row, nh, pick=tuple(h // kv_mul for h in range(nh)))(name=f"{cname}_fork")
            fork.CLK @= att_clk
            fork.RESET @= io.RESET
            can_read = ~rvalid.O | fork.I.ready
            fire = active.O & can_read
            t_last = t.O == pos.O
            t.I @= m.mux([m.mux([t.O, wrap_inc(t.O, t_last)], fire), m.uint(0, len(t.O))], fresh.O)
            active.I @= m.mux([active.O & ~(fire & t_last), is_op("ATT")], fresh.O)
            rvalid.I @= m.mux([rvalid.O, active.O], can_read)
            fork.I.valid @= rvalid.O
            for k, c in enumerate(caches[cname]):
                if clock_gating:
                    c.RCLK @= att_clk
                c.RE @= can_read
                c.RADDR @= kv_row(t.O)
                fork.I.data[k] @= c.RDATA
            for h, a in enumerate(atts):
                out, sink = getattr(fork, f"O{h}"), getattr(a, port)
                sink.valid @= out.valid
                out.ready @= sink.ready
                for i in range(hs):
                    sink.data[i] @= out.data[i * ACT_BITS:(i + 1) * ACT_BITS]

        # ---- writes: buffers, and K/V rows assembled from hs results ----------------------
        for name, buf in bufs.items():
            writers = [o.name for o in PROGRAM if o.dst == name]
            buf.WE @= w_fire & is_op(*writers)
            buf.WADDR @= w_cnt.O[:len(buf.WADDR)]
            buf.WDATA @= w_data
        for buf in bufs.values():             # x and hb are read by the aux reader
            buf.RADDR @= x_idx.O[:len(buf.RADDR)]
        e_last = count_written(w_fire & is_op("Q", "K", "V"))
        kv_fire = w_fire & is_op("K", "V")
        held = []
        for i in range(hs - 1):
            r = data_reg(ACT, f"kv_row{i}", enable=True)
            load_when(r, kv_fire & (w_elem.O == i), w_data)
            held.append(r.O)
        row_data = m.concat(*held, w_data) if hs > 1 else w_data
        for cname, opn in (("k_cache", "K"), ("v_cache", "V")):
            for k, c in enumerate(caches[cname]):
                c.WE @= kv_fire & e_last & is_op(opn) & (w_head.O == k)
                c.WADDR @= kv_row(pos.O)
                c.WDATA @= row_data


@functools.lru_cache(maxsize=None)
def decoder(cfg: Config, lanes: int, bits: int):
    return Decoder(cfg, lanes, bits)
