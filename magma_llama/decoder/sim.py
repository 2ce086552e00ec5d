"""The decoder's Verilator simulation as a `step(token, pos, sample)` model.

`RtlDecoder` starts the harness binary (decoder/harness.cpp) on a weight image and
speaks its line protocol.  generation.generate() drives it like any other model:
prompt tokens go to TOK_IN (the final one marked `last`), and from then on the
hardware feeds its own sampled token back, so a later step only checks that the
token it is given is the one the hardware produced.  Each step clocks the design
until its TOK_OUT beat, so text can be printed while tokens leave the hardware.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from magma_llama.errors import MagmaLlamaError


class RtlError(MagmaLlamaError):
    """The simulated hardware broke a rule, hung, or disagreed with the host."""


@dataclass
class Beat:
    token: int
    cycle: int          # the cycle of the TOK_OUT transfer, counted from reset
    wdata_words: int    # WDATA transfers up to and including that cycle


@dataclass
class RtlStats:
    tokens: int
    cycles: int           # cycles from reset to the last TOK_OUT beat
    wdata_words: int
    wall_seconds: float   # wall time spent clocking the design

    @property
    def cycles_per_token(self) -> float:
        return self.cycles / self.tokens if self.tokens else 0.0

    @property
    def sim_tokens_per_s(self) -> float:
        return self.tokens / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def weight_port_utilisation(self) -> float:
        return self.wdata_words / self.cycles if self.cycles else 0.0

    def summary(self) -> str:
        return (f"rtl: {self.tokens} tokens, {self.cycles_per_token:.1f} cycles/token, "
                f"simulated {self.sim_tokens_per_s:.2f} tok/s (wall), "
                f"weight port utilisation {100 * self.weight_port_utilisation:.1f}% "
                f"({self.wdata_words} words in {self.cycles} cycles)")


@dataclass
class RtlDecoder:
    """One simulation process; use as a context manager (or call close())."""
    binary: Path
    weights_hex: Path
    inv_t: int = 0                   # 0 = greedy, else inv_temperature_q16(T)
    seed: int = 0                    # the PRNG state at reset: numerics.sampling.prng_seed(seed)
    latency: int = 2
    bytes_per_cycle: int = 0
    trace: str | None = None
    ready_percent: int = 100         # TOK_OUT ready density (backpressure)
    ready_seed: int = 1
    max_cycles_per_token: int = 50_000_000
    plusargs: tuple[str, ...] = ()   # more harness arguments, e.g. the timeline probe's +timeline=FILE
    beats: list[Beat] = field(default_factory=list)

    def __post_init__(self):
        cmd = [str(self.binary), f"+weights={self.weights_hex}", f"+latency={self.latency}",
               f"+bytes_per_cycle={self.bytes_per_cycle}"]
        cmd += list(self.plusargs)
        if self.trace:
            cmd += ["--trace", str(self.trace)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pos = 0
        self.prompt_done = False
        self.wall = 0.0
        self._expect("hello")
        self._send(f"reset {self.inv_t} {self.seed}")
        self._expect("ok")
        if self.ready_percent < 100:
            self._send(f"ready {self.ready_percent} {self.ready_seed}")

    # -- protocol ---------------------------------------------------------------
    def _send(self, line: str) -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._died()

    def _line(self) -> list[str]:
        line = self.proc.stdout.readline()
        if not line:
            self._died()
        words = line.split()
        if words and words[0] == "error":
            self.close()
            raise RtlError(f"rtl simulation: {' '.join(words[1:])}")
        return words

    def _expect(self, word: str) -> list[str]:
        words = self._line()
        if not words or words[0] != word:
            self.close()
            raise RtlError(f"rtl simulation: expected {word!r}, got {' '.join(words)!r}")
        return words

    def _died(self):
        code = self.proc.wait()
        raise RtlError(f"rtl simulation {self.binary} exited with status {code}")

    # -- the model ----------------------------------------------------------------
    def run(self, n: int) -> list[Beat]:
        """Clock until n more TOK_OUT beats."""
        t0 = time.perf_counter()
        self._send(f"run {n} {self.max_cycles_per_token * n}")
        got = []
        while True:
            words = self._line()
            if words[0] == "out":
                got.append(Beat(*map(int, words[1:4])))
            elif words[0] == "done":
                break
            elif words[0] == "timeout":
                self.close()
                raise RtlError(f"rtl simulation: no token for {self.max_cycles_per_token} cycles at "
                               f"position {self.pos + len(got)} (cycle {words[1]})")
            else:
                raise RtlError(f"rtl simulation: unexpected line {' '.join(words)!r}")
        self.wall += time.perf_counter() - t0
        self.beats += got
        return got

    def step(self, token: int, pos: int, sample: bool) -> int | None:
        """generation.generate's model: forced tokens go in; after the last, check the feedback."""
        if pos != self.pos:
            raise RtlError(f"positions must come in order from 0: got {pos}, expected {self.pos}")
        if not self.prompt_done:
            self._send(f"tok {token} {int(sample)}")
            self.prompt_done = sample
        elif token != self.beats[-1].token:
            raise RtlError(f"position {pos}: the host fed token {token} but the hardware fed back "
                           f"{self.beats[-1].token}")
        beat, = self.run(1)
        self.pos += 1
        return beat.token if sample else None

    def op_cycles(self) -> list[int]:
        """Cycles since reset spent in each value of the decoder's op register (memory_model.OP_SLOTS
        counters; a design without an op register has them all in slot 0)."""
        self._send("ops")
        words = self._expect("ops")
        return list(map(int, words[1:]))

    def stats(self) -> RtlStats:
        last = self.beats[-1] if self.beats else Beat(0, 0, 0)
        cycles = last.cycle + 1 if self.beats else 0
        return RtlStats(len(self.beats), cycles, last.wdata_words, self.wall)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Beat", "RtlDecoder", "RtlError", "RtlStats"]
