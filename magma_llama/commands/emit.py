"""`magma-llama emit --format coreir|verilog --out DIR [NAME...]`: write designs as CoreIR JSON and Verilog."""

from __future__ import annotations

from pathlib import Path

from magma_llama import paths


def register(subparsers) -> None:
    p = subparsers.add_parser("emit", help="write each design as CoreIR JSON and/or Verilog")
    p.add_argument("names", nargs="*", metavar="NAME", help="designs to write (default: all)")
    p.add_argument("--format", action="append", choices=["coreir", "verilog"],
                   help="coreir (.json) or verilog (.v); repeat for both (default: both)")
    p.add_argument("--out", default=None, help="output folder (default: build/emit)")
    p.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall on each .v (waivers: formal/lint_waivers.vlt) "
                        "and check that no valid depends combinationally on a ready (rule R3)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel compiles (default 2)")
    p.set_defaults(func=cmd_emit)


def cmd_emit(args) -> int:
    from magma_llama.formal.emit import emit, lint
    from magma_llama.formal.structure import valid_depends_on_ready

    out = Path(args.out) if args.out else paths.build_dir() / "emit"
    formats = args.format or ["coreir", "verilog"]
    status = 0
    for r in emit(args.names, formats, out, workers=max(1, args.jobs)):
        for f in r["files"]:
            note = ""
            if args.lint and f.endswith(".v"):
                clean, msgs = lint(Path(f))
                note = "  lint clean" if clean else "  LINT FAILED"
                if not clean:
                    status = 1
                    print(msgs)
                if valid_depends_on_ready(Path(f), r["top"]):
                    note += ", R3 FAILED (valid depends on ready)"
                    status = 1
                else:
                    note += ", R3 ok"
            print(f"{r['name']:<10} {f}{note}")
    return status
