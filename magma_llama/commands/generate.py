"""`magma-llama generate`: generate text on the decoder's RTL, simulated by Verilator.

Same flags and output as `golden` (the hardware sampler: no top-p), plus the hardware
shape (--lanes, --weights) and the weight memory's timing (--latency,
--bytes-per-cycle).  Every check of the input runs before elaboration or Verilator
start, so bad input costs no build.  The decoder is elaborated and verilated once per
(config, lanes, format, trace, sources) and cached under build/rtl/ (decoder/build.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from magma_llama.errors import UsageError

DEFAULT_LANES = 16
DEFAULT_LATENCY = 2
DEFAULT_STEPS = 256


def _int_at_least(lo: int, what: str):
    def convert(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise UsageError(f"{what} must be an integer, got {s!r}") from None
        if v < lo:
            raise UsageError(f"{what} must be >= {lo}, got {s}")
        return v
    convert.__name__ = what
    return convert


def register(subparsers) -> None:
    from magma_llama import cli
    from magma_llama.commands.golden import add_weight_args
    p = subparsers.add_parser("generate", help="generate on the decoder RTL (Verilator simulation)")
    cli.add_run_args(p)
    add_weight_args(p)
    for a in p._actions:
        if a.dest == "topp":
            a.default = 1.0
            a.help = "top-p: the hardware sampler has none; only 0 or 1 (off) with -t > 0 (default 1)"
        if a.dest == "steps":     # unset: 256 or seq_len if less; more than seq_len given is an error
            a.default = None
            a.help = f"positions to run; 0 = seq_len (default {DEFAULT_STEPS}, at most seq_len)"
    p.add_argument("--lanes", type=_int_at_least(1, "lanes"), default=DEFAULT_LANES,
                   help=f"MatVec lanes = weights per port word (default {DEFAULT_LANES})")
    p.add_argument("--trace", metavar="FILE", help="dump the whole run's waveforms: FILE.fst (needs lz4.h to "
                   "build) or FILE.vcd")
    p.add_argument("--latency", type=_int_at_least(2, "latency"), default=DEFAULT_LATENCY,
                   help="weight memory: cycles from a request to its first word (>= 2, default 2)")
    p.add_argument("--bytes-per-cycle", type=_int_at_least(0, "bytes-per-cycle"), default=0,
                   help="weight memory bandwidth; 0 = one port word a cycle (default 0)")
    p.add_argument("--timeline", metavar="FILE.png", help="draw where the cycles of the last position go "
                   "(a row per unit: busy/stalled/blocked; docs/waveforms.md)")
    p.add_argument("--timeline-text", action="store_true", help="print the cycle table (cycle, pos, layer, op, "
                   "token) of the first positions on stderr")
    # a stand-in circuit with the decoder's ports (MODULE:FACTORY), used by the harness tests
    p.add_argument("--design", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_generate)


def _factory(spec: str | None):
    from magma_llama.decoder.build import default_factory
    if spec is None:
        return default_factory
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"--design {spec}: {e}") from None


class _Progress:
    """`[pos/steps] cycles/token` on stderr, only where it cannot garble the text:
    stderr is a terminal and stdout is not showing the text on it."""

    def __init__(self, steps: int, ids: bool):
        self.on = sys.stderr.isatty() and (ids or not sys.stdout.isatty())
        self.steps = steps

    def show(self, pos: int, stats) -> None:
        if self.on:
            done = pos + 1
            bar = "#" * (20 * done // max(1, self.steps))
            eta = stats.wall_seconds / done * (self.steps - done)
            print(f"\r\033[K[{bar:<20}] [{done}/{self.steps}] {stats.cycles_per_token:.0f} cycles/token, "
                  f"{eta:.0f} s left", end="", file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.on:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def cmd_generate(args) -> int:
    from magma_llama import cli
    from magma_llama.commands.golden import check_topp
    from magma_llama.decoder.build import trace_format
    from magma_llama.decoder.top import check_config
    from magma_llama.generation import clamp_steps
    from magma_llama.numerics.sampling import inv_temperature_q16, prng_seed
    from magma_llama.numerics.weights import WEIGHT_FORMATS, weight_format

    check_topp(args.temperature, args.topp)
    fmt = weight_format(args.weights, args.group, args.exp_rule)
    factory = _factory(args.design)
    ckpt, tokenizer = cli.load_model_and_tokenizer(args)
    cfg = ckpt.config
    if args.steps is None:
        args.steps = min(DEFAULT_STEPS, cfg.seq_len)
    if args.steps > cfg.seq_len:
        raise UsageError(f"steps {args.steps} is more than the model's seq_len {cfg.seq_len}")
    layout = check_config(cfg, args.lanes, WEIGHT_FORMATS[args.weights])
    trace = trace_format(args.trace) if args.trace else None
    if args.timeline and not args.timeline.lower().endswith(".png"):
        raise UsageError(f"--timeline {args.timeline}: the file must end in .png")
    steps = clamp_steps(args.steps, cfg.seq_len)
    timeline_args, timeline_file = _timeline_plusargs(args, steps)
    inv_t = 0 if args.temperature == 0 else inv_temperature_q16(args.temperature)
    seed = prng_seed(cli._seed_or_time(args.seed))
    progress = _Progress(steps, args.ids)
    sims = []

    def make_step():      # run_generation calls this after the prompt checks: build only then
        from magma_llama.decoder.build import build_rtl, weight_hex
        from magma_llama.decoder.sim import RtlDecoder
        from magma_llama.numerics.image import load_or_build

        image, image_path = load_or_build(ckpt, fmt)
        hex_path = weight_hex(image, image_path, layout)
        built = build_rtl(cfg, layout.lanes, layout.bits, trace=trace, factory=factory)
        sim = RtlDecoder(built.binary, hex_path, inv_t=inv_t, seed=seed, latency=args.latency,
                         bytes_per_cycle=args.bytes_per_cycle, trace=args.trace, plusargs=timeline_args)
        if args.trace:
            from magma_llama.decoder.waves import write_gtkw
            print(f"gtkwave layout: {write_gtkw(built, args.trace)}", file=sys.stderr)
        sims.append(sim)

        def step(token, pos, sample):
            out = sim.step(token, pos, sample)
            progress.show(pos, sim.stats())
            if pos + 1 == progress.steps:     # before run_generation prints the --ids line
                progress.clear()
            return out
        return step

    try:
        cli.run_generation(args, make_step, tokenizer, cfg.seq_len)
    finally:
        progress.clear()
        for sim in sims:
            sim.close()
    if sims:
        print(sims[0].stats().summary(), file=sys.stderr)
        if timeline_file:
            _show_timeline(args, timeline_file, sims[0], steps)
    return 0


TIMELINE_TEXT_POSITIONS = 3     # --timeline-text: the first positions


def _timeline_plusargs(args, steps: int):
    """The probe's plusargs (decoder/timeline.py): the first positions for the table, the last for the picture."""
    if not (args.timeline or args.timeline_text):
        return (), None
    from magma_llama import paths
    folder = paths.build_dir() / "timeline"
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / f"run-{os.getpid()}.txt"
    plus = [f"+timeline={record}"]
    if args.timeline_text:
        plus += ["+timeline_from=0", f"+timeline_to={min(TIMELINE_TEXT_POSITIONS, steps) - 1}"]
    if args.timeline:
        plus.append(f"+timeline_at={steps - 1}")
    return tuple(plus), record


def _show_timeline(args, record, sim, steps: int) -> None:
    from magma_llama.decoder import timeline
    t = timeline.read_timeline(record)
    tokens = {p: b.token for p, b in enumerate(sim.beats)}     # TOK_OUT of each position
    if args.timeline_text:
        first = t.window(range(min(TIMELINE_TEXT_POSITIONS, steps)))
        print(timeline.text_table(first, tokens), file=sys.stderr)
    if args.timeline:
        last = t.window([steps - 1])
        from magma_llama import paths
        model = os.path.basename(args.model or str(paths.default_model()))
        timeline.draw(last, args.timeline, title=f"{model}: position {steps - 1}, "
                      f"{len(last.cycles)} cycles (L={args.lanes}, {args.weights})")
        print(f"timeline: {args.timeline} (position {steps - 1}, {len(last.cycles)} cycles)", file=sys.stderr)
        print(timeline.totals_table(last), file=sys.stderr)
    os.remove(record)
