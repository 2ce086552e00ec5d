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
