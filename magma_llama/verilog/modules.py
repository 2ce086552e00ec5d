"""The modules of an emitted Verilog file: each module's text, its instances, and the
modules one of them needs (itself and everything below it), so that one module of the
decoder can be synthesised on its own."""

from __future__ import annotations

import re

_MODULE = re.compile(r"^module\s+(\w+).*?^endmodule\s*$", re.M | re.S)
_INSTANCE = re.compile(r"^\s*(\w+)\s+(?:#\s*\(.*?\)\s*)?(\w+)\s*\(", re.M | re.S)


def modules(verilog_text: str) -> dict[str, str]:
    """name -> the module's text (from `module` to `endmodule`), in file order."""
    return {mm.group(1): mm.group(0) for mm in _MODULE.finditer(verilog_text)}


def instances(module_text: str, known) -> list[tuple[str, str]]:
    """(module, instance name) of every instance of a `known` module inside a module's text."""
    body = module_text.split(";", 1)[1] if ";" in module_text else module_text   # past the port list
    return [(mod, inst) for mod, inst in _INSTANCE.findall(body) if mod in known]


def closure(mods: dict[str, str], top: str) -> list[str]:
    """`top` and every module below it, in the order of `mods` (the file's)."""
    need, todo = {top}, [top]
    while todo:
        for mod, _ in instances(mods[todo.pop()], mods):
            if mod not in need:
                need.add(mod)
                todo.append(mod)
    return [name for name in mods if name in need]


def source(mods: dict[str, str], top: str) -> str:
    """The Verilog of `top` and the modules it needs, and nothing else."""
    return "\n".join(mods[name] for name in closure(mods, top)) + "\n"


_HEADER = re.compile(r"^module\s+(\w+)\s*\((.*?)\)\s*;", re.M | re.S)
_PORT = re.compile(r"^\s*(?:(input|output|inout)\s+)?(?:(?:wire|reg|logic)\s+)?((?:\[[^\]]+\]\s*)+)?(\w+)\s*$")


def ports(verilog_text: str, top: str) -> list[tuple[str, str, str]]:
    """(direction, range, name) of `top`'s ANSI port list, in order; a port written without a
    direction or range takes the previous one's (Verilog's rule, and CIRCT's style)."""
    for mm in _HEADER.finditer(verilog_text):
        if mm.group(1) != top:
            continue
        out, direction, rng = [], None, ""
        for item in re.sub(r"//[^\n]*", "", mm.group(2)).split(","):
            if not item.strip():
                continue
            p = _PORT.match(item.replace("\n", " "))
            if p is None:
                raise ValueError(f"{top}: a port the parser does not read: {item.strip()!r}")
            if p.group(1):
                direction, rng = p.group(1), (p.group(2) or "").strip()
            elif p.group(2):
                rng = p.group(2).strip()
            if direction not in ("input", "output"):
                raise ValueError(f"{top}: port {p.group(3)} is {direction or 'without a direction'}")
            out.append((direction, rng, p.group(3)))
        return out
    raise ValueError(f"no module {top} in the Verilog")


def registered_ports(verilog_text: str, top: str, clock: str = "CLK") -> tuple[str, str, int]:
    """The Verilog with a wrapper `<top>_ports` that puts a register on every port of `top`
    but the clock, so that out of context the paths from and to the ports are timed like the
    register-to-register paths they are inside a larger design: (text, wrapper, register bits)."""
    ps = ports(verilog_text, top)
    if not any(name == clock for _, _, name in ps):
        raise ValueError(f"{top} has no port {clock}")
    name = f"{top}_ports"
    decl, body, conns, bits = [f"input {clock}"], [], [f".{clock}({clock})"], 0
    for direction, rng, port in ps:
        if port == clock:
            continue
        width = 1
        for hi, lo in re.findall(r"\[\s*(\d+)\s*:\s*(\d+)\s*\]", rng):     # packed dimensions multiply
            width *= abs(int(hi) - int(lo)) + 1
        bits += width
        r = f"{rng} " if rng else ""
        decl.append(f"{direction} {r}{port}")
        body.append(f"  reg {r}{port}_q;")
        if direction == "input":
            body.append(f"  always @(posedge {clock}) {port}_q <= {port};")
            conns.append(f".{port}({port}_q)")
        else:
            body.append(f"  wire {r}{port}_d;")
            body.append(f"  always @(posedge {clock}) {port}_q <= {port}_d;")
            body.append(f"  assign {port} = {port}_q;")
            conns.append(f".{port}({port}_d)")
    wrapper = (f"module {name} (" + ", ".join(decl) + ");\n" + "\n".join(body) + "\n"
               f"  {top} dut (" + ", ".join(conns) + ");\nendmodule\n")
    return verilog_text + "\n" + wrapper, name, bits
