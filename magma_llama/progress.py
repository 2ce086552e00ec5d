"""The one progress bar of the command line: a line on stderr, drawn only on a terminal.

`fetch-model` counts bytes (shown in MB); `synth` counts designs and shows, beside the
bar, which tool runs on which design and for how long."""

from __future__ import annotations

import sys
import time


class Bar:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal.

    unit "MB": `done` and `total` are bytes, shown in megabytes; unit "": a count of items."""

    def __init__(self, label: str, total: int | None, stream=None, unit: str = "MB"):
        self.label, self.total, self.stream, self.unit = label, total, stream or sys.stderr, unit
        self.on = self.stream.isatty()
        self.last = 0.0

    def _amount(self, n: float) -> str:
        return f"{n / 1e6:.1f}" if self.unit == "MB" else f"{n:g}"

    def update(self, done: int, force: bool = False, note: str = "") -> None:
        now = time.monotonic()
        if not self.on or (not force and now - self.last < 0.1):
            return
        self.last = now
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            frac = min(1.0, done / self.total)
            text = (f"[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}% "
                    f"{self._amount(done)}/{self._amount(self.total)}{unit}")
        else:                 # no total yet: the amount so far (a count starts only with the first item)
            text = f"{self._amount(done)}{unit}" if self.unit or done else ""
        line = " ".join(part for part in (self.label, text, note and (" " + note if text else note)) if part)
        print(f"\r\033[K{line}", end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.on:
            print("\r\033[K", end="", file=self.stream, flush=True)
