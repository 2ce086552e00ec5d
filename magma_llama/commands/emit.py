"""`magma-llama emit`: write designs as CoreIR JSON and Verilog.

Without --model: the design table's blocks and stages (emitted sizes).  With --model:
the whole decoder for that checkpoint's config (`--lanes`, `--weights`): the top in one
Verilog file with every module (and the SRAM models), each module also in its own file
under modules/, and the CoreIR JSON; `--lint` and `--stat` check and size it."""

from __future__ import annotations

from pathlib import Path

from magma_llama import paths


def register(subparsers) -> None:
    from magma_llama.numerics.weights import DEFAULT_FORMAT, WEIGHT_FORMATS
    p = subparsers.add_parser("emit", help="write each design (or the whole decoder) as CoreIR JSON and Verilog")
    p.add_argument("names", nargs="*", metavar="NAME", help="designs to write (default: all; not with --model)")
    p.add_argument("--model", "-m", help="emit the whole decoder for this llama2.c checkpoint's config")
    p.add_argument("--lanes", type=int, default=16, help="MatVec lanes of the decoder (default 16)")
    p.add_argument("--weights", choices=sorted(WEIGHT_FORMATS), default=DEFAULT_FORMAT,
                   help=f"weight format of the decoder (default {DEFAULT_FORMAT})")
    p.add_argument("--format", action="append", choices=["coreir", "verilog"],
                   help="coreir (.json) or verilog (.v); repeat for both (default: both)")
    p.add_argument("--out", default=None, help="output folder (default: build/emit)")
    p.add_argument("--lint", action="store_true",
                   help="run verilator --lint-only -Wall on each .v (waivers: formal/lint_waivers.vlt) "
                        "and check that no valid depends combinationally on a ready (rule R3)")
    p.add_argument("--stat", action="store_true",
                   help="Yosys coarse synthesis of the decoder: cells, multipliers, flip-flops, memories")
    p.add_argument("-j", "--jobs", type=int, default=2, help="parallel compiles (default 2)")
    p.set_defaults(func=cmd_emit)


def _check(path: Path, top: str) -> tuple[str, int]:
    from magma_llama.verilog.emit import lint
    from magma_llama.verilog.structure import valid_depends_on_ready
    clean, msgs = lint(path)
    note, status = ("  lint clean" if clean else "  LINT FAILED"), 0 if clean else 1
    if not clean:
        print(msgs)
    if valid_depends_on_ready(path, top):
        return note + ", R3 FAILED (valid depends on ready)", 1
    return note + ", R3 ok", status


def split_modules(verilog: Path, folder: Path) -> list[Path]:
    """One file per module of a Verilog file, named after the module."""
    from magma_llama.verilog.modules import modules
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in modules(verilog.read_text()).items():
        f = folder / f"{name}.v"
        f.write_text(text + "\n")
        out.append(f)
    return out


def _emit_decoder(args, out: Path, formats: list[str]) -> int:
    import magma as m

    from magma_llama.decoder.top import check_config, decoder
    from magma_llama.verilog.emit import compile_verilog
    from magma_llama.io.checkpoint import read_header
    from magma_llama.numerics.weights import WEIGHT_FORMATS

    cfg = read_header(args.model)
    bits = WEIGHT_FORMATS[args.weights]
    check_config(cfg, args.lanes, bits)
    top = decoder(cfg, args.lanes, bits)
    folder = out / top.name
    status = 0
    if "verilog" in formats:
        v = compile_verilog(top, folder)
        mods = split_modules(v, folder / "modules")
        note = ""
        if args.lint:
            note, status = _check(v, top.name)
        print(f"{top.name}  {v}{note}")
        print(f"{'':<{len(top.name)}}  {len(mods)} modules in {folder / 'modules'}: "
              + ", ".join(p.stem for p in mods))
        if args.stat:
            from magma_llama.verilog.stat import yosys_stat
            for line in yosys_stat(v, top.name).summary():
                print(f"  {line}")
    if "coreir" in formats:
        base = folder / top.name
        m.compile(str(base), top, output="coreir")
        print(f"{top.name}  {base.with_suffix('.json')}  (SRAMs are external modules)")
    return status


def cmd_emit(args) -> int:
    from magma_llama.errors import UsageError
    from magma_llama.verilog.emit import emit

    out = Path(args.out) if args.out else paths.build_dir() / "emit"
    formats = args.format or ["coreir", "verilog"]
    if args.model:
        if args.names:
            raise UsageError("give either design names or --model, not both")
        return _emit_decoder(args, out, formats)
    if args.stat:
        raise UsageError("--stat needs --model (it sizes the whole decoder)")
    status = 0
    for r in emit(args.names, formats, out, workers=max(1, args.jobs)):
        for f in r["files"]:
            note = ""
            if args.lint and f.endswith(".v"):
                note, bad = _check(Path(f), r["top"])
                status |= bad
            print(f"{r['name']:<10} {f}{note}")
    return status
