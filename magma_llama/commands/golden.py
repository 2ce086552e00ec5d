"""`magma-llama golden`: generate with the golden model (the hardware's integer arithmetic).

Same flags and output as `ref`, plus the weight format.  The weights come from the
weight image under build/weights/ (made from the checkpoint on first use) or from
--image.  The hardware sampler has no top-p: -p in (0, 1) with -t > 0 is an error.
"""

from __future__ import annotations

from magma_llama.errors import UsageError


def _group(s: str) -> int:
    try:
        g = int(s)
    except ValueError:
        raise UsageError(f"group size must be an integer, got {s!r}") from None
    if not 1 <= g <= 4096:
        raise UsageError(f"group size must be in [1, 4096], got {s}")
    return g


def add_weight_args(p) -> None:
    from magma_llama.numerics.weights import DEFAULT_FORMAT, DEFAULT_GROUP, DEFAULT_RULE, EXPONENT_RULES, WEIGHT_FORMATS
    p.add_argument("--weights", choices=list(WEIGHT_FORMATS), default=DEFAULT_FORMAT,
                   help=f"weight format: signed mantissa bits (default {DEFAULT_FORMAT})")
    p.add_argument("--group", type=_group, default=DEFAULT_GROUP,
                   help=f"weights per power-of-two exponent along a row (default {DEFAULT_GROUP})")
    p.add_argument("--exp-rule", choices=list(EXPONENT_RULES), default=DEFAULT_RULE,
                   help="quantizer's exponent choice: fit (no clipping) or mse (least squared error; "
                        f"default {DEFAULT_RULE})")


def register(subparsers) -> None:
    from magma_llama import cli
    p = subparsers.add_parser("golden", help="generate with the golden model (bit-exact integer hardware model)")
    cli.add_run_args(p)
    add_weight_args(p)
    p.add_argument("--image", help="weight image to use (default: build/weights/, made from --model)")
    for a in p._actions:
        if a.dest == "topp":
            a.default = 1.0
            a.help = "top-p: the hardware sampler has none; only 0 or 1 (off) with -t > 0 (default 1)"
    p.set_defaults(func=cmd_golden)


def check_topp(temperature: float, topp: float) -> None:
    if temperature > 0 and 0.0 < topp < 1.0:
        raise UsageError(f"top-p {topp:g} is not supported by the hardware sampler "
                         "(temperature sampling only): use -p 1 or -t 0")


def cmd_golden(args) -> int:
    from magma_llama import cli
    from magma_llama.golden.model import GoldenTransformer
    from magma_llama.numerics.image import load_or_build
    from magma_llama.numerics.sampling import HardwareSampler
    from magma_llama.numerics.weights import weight_format

    check_topp(args.temperature, args.topp)
    fmt = weight_format(args.weights, args.group, args.exp_rule)
    ckpt, tokenizer = cli.load_model_and_tokenizer(args)
    image, _ = load_or_build(ckpt, fmt, args.image)

    def make_step():
        model = GoldenTransformer(image)
        sampler = HardwareSampler(args.temperature, cli._seed_or_time(args.seed))

        def step(token, pos, sample):
            logits = model.forward(token, pos)
            return sampler.sample(logits) if sample else None
        return step

    cli.run_generation(args, make_step, tokenizer, ckpt.config.seq_len)
    return 0
