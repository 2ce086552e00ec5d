"""Properties written next to the logic they describe, emitted as one `ifdef FORMAL block.

A block generator called with `formal=True` builds a `Props`, attaches the stream
monitor to each port in one line (`p.monitor(io.I)`), adds its own invariants, and
calls `p.emit()`.  The text goes into the block's own Verilog through
`m.inline_verilog`, so invariants may name internal registers: k-induction needs
them, because a property about ports alone is rarely inductive.
"""

from __future__ import annotations

import magma as m

from magma_llama.streams.types import width


def leaves(value) -> list:
    """The Bits/Bit leaves of a magma value, LSB-first order of the flattened payload."""
    if isinstance(value, (m.Bits, m.Digital)):
        return [value]
    if isinstance(value, m.Tuple):
        out = []
        for k in type(value).field_dict:
            out += leaves(value[k])
        return out
    if isinstance(value, m.Array):
        out = []
        for i in range(len(value)):
            out += leaves(value[i])
        return out
    raise TypeError(f"cannot take leaves of {type(value)}")


class Props:
    """Collects SystemVerilog property text for one circuit definition."""

    def __init__(self, io):
        self.args: dict = {}
        self.lines: list[str] = []
        self._n = 0
        self.clk = self.sig(io.CLK)
        self.rst = self.sig(io.RESET)
        self.lines += [
            "reg f_past_valid = 1'b0;",
            f"always @(posedge {self.clk}) f_past_valid <= 1'b1;",
            # every trace starts in reset; reset may also come back at any time
            f"always @(*) if (!f_past_valid) assume({self.rst});",
        ]

    # -- naming ----------------------------------------------------------------
    def sig(self, value) -> str:
        """A placeholder that inline_verilog replaces by the net of `value`."""
        name = f"_a{self._n}"
        self._n += 1
        self.args[name] = value
        return "{" + name + "}"

    def data(self, value) -> str:
        """The payload as one SV vector (a concatenation, MSB first)."""
        parts = [self.sig(v) for v in leaves(value)]
        if len(parts) == 1:
            return parts[0]
        return "{{" + ", ".join(reversed(parts)) + "}}"

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"f_{stem}_{self._n}"

    # -- one-line stream monitor -------------------------------------------------
    def monitor(self, port, data=None) -> dict:
        """Attach formal/stream_monitor.sv to a stream port: assume on inputs, assert on outputs.

        Returns SV expressions for the port's valid, ready, data and fire."""
        # inside a definition the port types are seen flipped: an input stream
        # (Consumer from outside) looks like a Producer here
        is_input = m.is_producer(type(port))
        d = data if data is not None else port.data
        w = sum(width(type(x).undirected_t) for x in leaves(d))
        s = {"valid": self.sig(port.valid), "ready": self.sig(port.ready), "data": self.data(d)}
        s["fire"] = f"({s['valid']} && {s['ready']})"
        inst = self.fresh("mon")
        self.lines.append(
            f"stream_monitor #(.W({w}), .IS_INPUT({int(is_input)})) {inst} "
            f"(.clk({self.clk}), .rst({self.rst}), .valid({s['valid']}), .ready({s['ready']}), .data({s['data']}));")
        s["width"] = w
        return s

    # -- counters and the tracked beat ----------------------------------------------
    def counter(self, fire: str, bits: int, stem: str = "cnt") -> str:
        """A register counting `fire` events since reset (wraps at 2**bits)."""
        name = self.fresh(stem)
        self.lines += [
            f"reg [{bits - 1}:0] {name} = 0;",
            f"always @(posedge {self.clk}) if ({self.rst}) {name} <= 0; "
            f"else if ({fire}) {name} <= {name} + 1'b1;",
        ]
        return name

    def anyconst(self, bits: int, stem: str) -> str:
        name = self.fresh(stem)
        self.lines.append(f"(* anyconst *) reg [{bits - 1}:0] {name};")
        return name

    def reg(self, bits: int, stem: str, init: int = 0) -> str:
        name = self.fresh(stem)
        self.lines.append(f"reg [{bits - 1}:0] {name} = {init};")
        return name

    def wire(self, bits: int, stem: str, expr: str) -> str:
        name = self.fresh(stem)
        self.lines.append(f"wire [{bits - 1}:0] {name} = {expr};")
        return name

    # -- property statements ---------------------------------------------------------
    def assume(self, cond: str) -> None:
        self.lines.append(f"always @(*) assume({cond});")

    def assert_(self, cond: str) -> None:
        """A safety property (or an invariant that makes induction go through)."""
        self.lines.append(f"always @(*) assert({cond});")

    def assert_clocked(self, cond: str) -> None:
        """Checked on each clock edge after the first, outside reset ($past allowed)."""
        self.lines.append(f"always @(posedge {self.clk}) if (f_past_valid && !$past({self.rst})) assert({cond});")

    def cover(self, cond: str) -> None:
        self.lines.append(f"always @(posedge {self.clk}) if (f_past_valid && !{self.rst}) cover({cond});")

    def sticky(self, cond: str, stem: str = "seen") -> str:
        """A flag that goes high once `cond` held outside reset and stays high."""
        name = self.fresh(stem)
        self.lines += [f"reg {name} = 1'b0;",
                       f"always @(posedge {self.clk}) if (!{self.rst} && ({cond})) {name} <= 1'b1;"]
        return name

    def cover_fill_stall_drain(self, full: str, empty: str, stall: str) -> None:
        """Show the block can fill up, be held by a stalled consumer, and empty again."""
        was_full = self.sticky(full, "was_full")
        self.cover(full)
        self.cover(stall)
        self.cover(f"{was_full} && {empty}")

    def track(self, i: dict, o: dict, bits: int, f_in: str | None = None) -> dict:
        """ZipCPU-style scoreboard of one arbitrary beat from input `i` to output `o`.

        The environment presents data f_data as input beat number f_idx; the block must
        present exactly that data as output beat number f_idx.  Since f_idx and f_data
        are arbitrary, this proves order, no drop and no duplicate for every beat
        (beats are counted modulo 2**bits, wider than the block can hold).  Pass `f_in`
        to share one input counter between several outputs (fork)."""
        f_in = f_in or self.counter(i["fire"], bits, "in")
        f_out = self.counter(o["fire"], bits, "out")
        f_idx = self.anyconst(bits, "idx")
        f_data = self.anyconst(i["width"], "data")
        self.assume(f"!({i['valid']} && {f_in} == {f_idx}) || {i['data']} == {f_data}")
        self.assert_(f"!({o['valid']} && {f_out} == {f_idx}) || {o['data']} == {f_data}")
        return {"in": f_in, "out": f_out, "idx": f_idx, "data": f_data}

    # -- emit -------------------------------------------------------------------------
    def emit(self) -> None:
        text = "`ifdef FORMAL\n" + "\n".join(self.lines) + "\n`endif"
        m.inline_verilog(text, **self.args)
