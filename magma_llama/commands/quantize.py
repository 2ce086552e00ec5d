"""`magma-llama quantize`: write the weight image (the hardware's weight memory) of a checkpoint."""

from __future__ import annotations

import os


def register(subparsers) -> None:
    from magma_llama import cli
    from magma_llama.commands.golden import add_weight_args
    p = subparsers.add_parser("quantize", help="write the weight image of a checkpoint (docs/weight_image.md)")
    cli.add_model_args(p)
    add_weight_args(p)
    p.add_argument("--out", "-o",
                   help="output file (default: build/weights/<model>-<hash>-<format>-g<G>-<rule>-q<N>.mlwi)")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    from magma_llama import paths
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.io.files import file_sha256
    from magma_llama.numerics.image import cached_image_path, quantize_checkpoint, read_image, write_image
    from magma_llama.numerics.weights import weight_format

    fmt = weight_format(args.weights, args.group, args.exp_rule)
    ckpt = read_checkpoint(args.model or str(paths.default_model()))
    sha = file_sha256(ckpt.path)
    out = args.out or cached_image_path(ckpt.path, fmt, sha)
    write_image(quantize_checkpoint(ckpt, fmt, sha), out)
    img = read_image(out)  # read back: what we wrote is what the hardware will get
    n = sum(s.q.mant.size for s in img.sections.values())
    print(f"{out}: {fmt.name}, group {fmt.group}, exponent rule {fmt.rule}, {len(img.sections)} sections, "
          f"{n} weights, {os.path.getsize(out)} bytes")
    return 0
