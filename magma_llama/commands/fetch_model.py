"""`magma-llama fetch-model NAME`: download a published llama2.c checkpoint or tokenizer into models/.

The files and their checksums are io/catalog.py's table.  A download resumes where an
interrupted one stopped (`NAME.part`), shows a progress bar on a terminal, and takes its
final name only once its SHA-256 (or, where none is published, its size and header) is
right; a corrupted download is removed and refused with one `error:` line.  `--url` and
`--sha256` fetch from a mirror, or a file of your own that the table does not know.
"""

from __future__ import annotations

import re
from pathlib import Path

from magma_llama.errors import UsageError


def register(subparsers) -> None:
    from magma_llama import cli
    from magma_llama.io.catalog import PUBLISHED
    _timeout = cli._checked(cli._float, "timeout", lambda t: t > 0, "> 0")
    names = ", ".join(n.removesuffix(".bin") if n.startswith("stories") else n for n in PUBLISHED)
    p = subparsers.add_parser("fetch-model", help="download a published checkpoint or tokenizer into models/",
                              description=f"NAME: {names}")
    p.add_argument("name", metavar="NAME", help=f"one of {names}; with --url and --sha256 any file name")
    p.add_argument("--out", "-o", help="folder to download into (default: the project's models/)")
    p.add_argument("--url", help="download from this address instead (a mirror, or a file of your own)")
    p.add_argument("--sha256", help="the file's SHA-256 (hex): required with --url for a name the table "
                   "does not know; overrides the table's")
    p.add_argument("--timeout", type=_timeout, default=30.0, help="seconds to wait for the server (default 30)")
    p.set_defaults(func=cmd_fetch_model)


def cmd_fetch_model(args) -> int:
    from magma_llama import paths
    from magma_llama.io.catalog import PUBLISHED, Published, fetch, lookup

    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise UsageError(f"--sha256 must be 64 hex digits, got {args.sha256!r}")
    known = args.name in PUBLISHED or f"{args.name}.bin" in PUBLISHED
    if known:
        pub = lookup(args.name)
        if args.sha256:
            pub = Published(pub.name, pub.url, args.sha256.lower(), None, pub.what)
    elif args.url and args.sha256:
        if "/" in args.name or args.name in (".", ".."):
            raise UsageError(f"NAME must be a plain file name, got {args.name!r}")
        pub = Published(args.name, args.url, args.sha256.lower())
    else:
        lookup(args.name)     # raises: unknown name, and says which are known
    folder = Path(args.out) if args.out else paths.REPO / "models"
    path = fetch(pub, folder, url=args.url, timeout=args.timeout)
    print(path)
    return 0
