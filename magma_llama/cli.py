"""`magma-llama`: the command line.

Contract (other tools rely on it): every error is one line on stderr starting
with `error:` and the exit status is 2; `--ids` prints the token chosen at each
position as whitespace-separated integers.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time

from magma_llama.errors import MagmaLlamaError, UsageError
from magma_llama import paths

EXIT_USAGE = 2

# Subcommands that live in their own module under magma_llama/commands/: each has
# `register(subparsers)` which adds its parser (with `parser_class=_Parser` errors).
COMMAND_MODULES: list[str] = ["prove", "emit", "golden", "quantize", "generate", "report", "fetch_model", "synth"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        raise UsageError(message)


# ---------------------------------------------------------------------------------
# argument types: refuse what run.c would silently replace
def _checked(parse, what: str, ok, rule: str):
    """An argparse type: parse, then refuse values outside `rule` with one clear line."""
    def convert(s: str):
        v = parse(s, what)
        if not ok(v):
            raise UsageError(f"{what} must be {rule}, got {s}")
        return v
    convert.__name__ = what
    return convert


def _float(s: str, what: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise UsageError(f"{what} must be a number, got {s!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{what} must be finite, got {s}")
    return v


def _int(s: str, what: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise UsageError(f"{what} must be an integer, got {s!r}") from None


_temperature = _checked(_float, "temperature", lambda t: t >= 0, ">= 0")
_topp = _checked(_float, "top-p", lambda p: 0.0 <= p <= 1.0, "in [0, 1]")
_steps = _checked(_int, "steps", lambda n: n >= 0, ">= 0")
_seed = _checked(_int, "seed", lambda n: 0 <= n < 2**64, "in [0, 2^64)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="llama2.c checkpoint (default: stories260K.bin in the models folder)")
    p.add_argument("--tokenizer", "-z", help="tokenizer.bin (default: tok512.bin in the models folder)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("-i", "--prompt", default="", help="prompt text (default: empty, start from BOS)")
    p.add_argument("-n", "--steps", type=_steps, default=256, help="positions to run; 0 = seq_len (default 256)")
    p.add_argument("-t", "--temperature", type=_temperature, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("-p", "--topp", type=_topp, default=0.9, help="nucleus top-p in [0, 1] (default 0.9)")
    p.add_argument("-s", "--seed", type=_seed, default=0, help="RNG seed; 0 = time, as run.c (default 0)")
    p.add_argument("--ids", action="store_true", help="print the chosen token ids instead of text")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="magma-llama", description=__doc__.splitlines()[0])
    from magma_llama import __version__
    parser.add_argument("--version", action="version", version=f"magma-llama {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("ref", help="generate with the float reference (llama2.c's run.c in numpy)")
    add_run_args(p)
    p.set_defaults(func=cmd_ref)

    p = sub.add_parser("encode", help="print the token ids of TEXT, BOS first, as run.c encodes it")
    p.add_argument("--tokenizer", "-z", help="tokenizer.bin (default: tok512.bin in the models folder)")
    p.add_argument("--model", "-m", help="checkpoint whose vocab_size the tokenizer must match (optional)")
    p.add_argument("text")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("demo", help="the README's main job: the decoder RTL generates on the default model")
    p.add_argument("-n", "--steps", type=_steps, default=256)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("doctor", help="check the toolchain: versions and paths, fail if anything is missing")
    p.set_defaults(func=cmd_doctor)

    for name in COMMAND_MODULES:
        importlib.import_module(f"magma_llama.commands.{name}").register(sub)
    return parser


# ---------------------------------------------------------------------------------
def load_model_and_tokenizer(args):
    """Checkpoint + tokenizer from --model/--tokenizer or the models folder, validated."""
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.io.tokenizer import read_tokenizer

    model = args.model or str(paths.default_model())
    tok = args.tokenizer or str(paths.default_tokenizer())
    ckpt = read_checkpoint(model)
    tokenizer = read_tokenizer(tok, ckpt.config.vocab_size)
    return ckpt, tokenizer


def _seed_or_time(seed: int) -> int:
    return seed if seed > 0 else int(time.time()) & 0xFFFFFFFF


def run_generation(args, make_step, tokenizer, seq_len: int, out=None) -> None:
    """Shared by ref/golden/generate: encode, run run.c's loop, print text or ids."""
    from magma_llama.generation import check_prompt, clamp_steps, generate

    out = out or sys.stdout.buffer
    prompt = os.fsencode(args.prompt)
    prompt_tokens = tokenizer.encode(prompt, bos=True)
    check_prompt(prompt_tokens, seq_len)
    steps = clamp_steps(args.steps, seq_len)
    step = make_step()
    ids, start, count = [], None, 0
    for s in generate(step, prompt_tokens, steps):
        count += 1
        if args.ids:
            ids.append(s.next)
            continue
        if s.next == 1:
            break
        out.write(tokenizer.printable(s.token, s.next))
        out.flush()
        if start is None:
            start = time.perf_counter()
    if args.ids:
        out.write((" ".join(map(str, ids)) + "\n").encode())
    else:
        out.write(b"\n")
    out.flush()
    if not args.ids and count > 1 and start is not None:
        elapsed = time.perf_counter() - start
        print(f"achieved tok/s: {(count - 1) / max(elapsed, 1e-9):f}", file=sys.stderr)


def cmd_ref(args) -> int:
    from magma_llama.reference.forward import FloatTransformer
    from magma_llama.reference.sampler import Sampler

    ckpt, tokenizer = load_model_and_tokenizer(args)

    def make_step():
        model = FloatTransformer(ckpt)
        sampler = Sampler(args.temperature, args.topp, _seed_or_time(args.seed))

        def step(token, pos, sample):
            logits = model.forward(token, pos)
            return sampler.sample(logits) if sample else None
        return step

    run_generation(args, make_step, tokenizer, ckpt.config.seq_len)
    return 0


def cmd_encode(args) -> int:
    from magma_llama.io.checkpoint import read_header
    from magma_llama.io.tokenizer import read_tokenizer

    vocab = read_header(args.model).vocab_size if args.model else None
    tok = read_tokenizer(args.tokenizer or str(paths.default_tokenizer()), vocab)
    print(" ".join(map(str, tok.encode(os.fsencode(args.text), bos=True))))
    return 0


def cmd_demo(args) -> int:
    """The main job: the decoder's RTL (Verilator) generates greedily from BOS on the default
    model (shipped in models/), or on a synthetic one if it has been removed."""
    model, tok = paths.default_model(), paths.default_tokenizer()
    steps = args.steps
    if not (model.exists() and tok.exists()):
        from magma_llama.io.synthetic import SHAPES, write_synthetic
        shape = SHAPES["gqa_unshared"]
        folder = paths.build_dir() / "synthetic"
        m, t = write_synthetic(str(folder), shape, seed=1)
        if steps == 0 or steps > shape.seq_len:
            steps = shape.seq_len
        where = " or ".join(str(f) for f in paths.model_folders())
        print(f"note: no {model.name} + {tok.name} in {where} (see models/README.md); using a synthetic "
              f"model {m}: random weights, so the text is noise, not a story ({steps} steps, its "
              f"seq_len is {shape.seq_len})", file=sys.stderr)
        model, tok = m, t
    ns = build_parser().parse_args(["generate", "--model", str(model), "--tokenizer", str(tok),
                                    "-t", "0", "-n", str(steps)])
    return ns.func(ns)


def cmd_doctor(args) -> int:
    from magma_llama.toolchain import doctor
    return doctor()


# ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except MagmaLlamaError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); not an error of ours
        sys.stderr.close()
        return 0
    except Exception as e:  # a bug of ours: still one line, but say how to see more
        if os.environ.get("MAGMA_LLAMA_DEBUG"):
            raise
        print(f"error: internal error: {type(e).__name__}: {e} (set MAGMA_LLAMA_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
