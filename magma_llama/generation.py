"""run.c's generation loop, shared by every model (float reference, golden, RTL).

The model is a `step(token, pos, sample)` callable: it runs the forward pass for
`token` at `pos` (every position must, to fill the KV cache) and, when `sample`
is true, returns the sampled next token.  The loop forces prompt tokens, stops
on BOS and honours the step count exactly as run.c's generate() does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from magma_llama.errors import PromptTooLongError, UsageError
from magma_llama.io.tokenizer import BOS


@dataclass
class Step:
    pos: int
    token: int   # the token fed in at pos
    next: int    # the token chosen (forced from the prompt, or sampled)
    forced: bool


def clamp_steps(steps: int, seq_len: int) -> int:
    """run.c: 0 or more than seq_len means seq_len.  Negative is refused."""
    if steps < 0:
        raise UsageError(f"steps must be >= 0, got {steps}")
    return seq_len if steps == 0 or steps > seq_len else steps


def check_prompt(prompt_tokens: list[int], seq_len: int) -> None:
    if len(prompt_tokens) > seq_len:
        raise PromptTooLongError(
            f"prompt is {len(prompt_tokens)} tokens (BOS included) but seq_len is {seq_len}")


def generate(step: Callable[[int, int, bool], int | None], prompt_tokens: list[int],
             steps: int) -> Iterator[Step]:
    """Yield one Step per position; the sampler is consulted only after the prompt."""
    token, pos = prompt_tokens[0], 0
    while pos < steps:
        forced = pos < len(prompt_tokens) - 1
        chosen = step(token, pos, not forced)
        nxt = prompt_tokens[pos + 1] if forced else chosen
        yield Step(pos, token, nxt, forced)
        pos += 1
        if nxt == BOS:
            return
        token = nxt
