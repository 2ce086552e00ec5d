"""`magma-llama emit`: CoreIR JSON and Verilog for every design; the Verilog lints clean."""

from __future__ import annotations

import json
import os

from tests.conftest import run_cli


def test_emit_every_design_and_lint(tmp_path):
    from magma_llama.formal.designs import select
    from magma_llama.verilog.emit import emit, lint
    from magma_llama.verilog.structure import valid_depends_on_ready
    res = emit([], ["coreir", "verilog"], tmp_path)
    assert [r["name"] for r in res] == [d.name for d in select([])]
    for r in res:
        v = [f for f in r["files"] if f.endswith(".v")]
        j = [f for f in r["files"] if f.endswith(".json")]
        assert len(v) == 1 and len(j) == 1, r
        text = open(v[0]).read()
        assert f"module {r['top']}" in text and "ifdef FORMAL" not in text
        assert r["top"] in json.load(open(j[0]))["namespaces"]["global"]["modules"]
        clean, msgs = lint(tmp_path / v[0])
        assert clean, msgs
        assert not valid_depends_on_ready(tmp_path / v[0], r["top"]), f"{r['name']}: valid depends on ready"


def test_lint_can_fail(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output [1:0] y);\n  assign y = a;\nendmodule\n")
    from magma_llama.verilog.emit import lint
    clean, msgs = lint(bad)
    assert not clean and "WIDTH" in msgs


def test_r3_check_can_fail(tmp_path):
    from magma_llama.verilog.structure import valid_depends_on_ready
    v = tmp_path / "Waits.v"
    v.write_text("module Waits(input CLK, input I_valid, input O_ready, output O_valid, output I_ready);\n"
                 "  reg r; always @(posedge CLK) r <= I_valid;\n"
                 "  assign O_valid = r & O_ready;\n  assign I_ready = O_ready;\nendmodule\n")
    assert valid_depends_on_ready(v, "Waits")
    v.write_text(v.read_text().replace("r & O_ready", "r"))
    assert not valid_depends_on_ready(v, "Waits")


def test_cli_emit_one_format(tmp_path):
    out = os.path.relpath(tmp_path)          # a relative --out, as users type it
    proc = run_cli("emit", "--format", "verilog", "--out", out, "--lint", "fifo", check=True)
    assert "lint clean, R3 ok" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Fifo_b8_d4.v"]


def test_two_way_muxes_are_emitted_as_ternaries(tmp_path):
    """verilog/mux_lowering.py: a 2-way mux of bit vectors is `s ? b : a` in the Verilog (the
    simulator's conditional move), not an index into a packed array; wider muxes stay arrays."""
    import magma as m

    from magma_llama.verilog.emit import compile_verilog

    class Muxes(m.Circuit):
        io = m.IO(a=m.In(m.Bits[64]), b=m.In(m.Bits[64]), s=m.In(m.Bit), t=m.In(m.Bits[2]),
                  y=m.Out(m.Bits[64]), z=m.Out(m.Bits[64]))
        io.y @= m.mux([io.a, io.b], io.s)
        io.z @= m.mux([io.a, io.b, io.a ^ io.b, io.a & io.b], io.t)

    text = compile_verilog(Muxes, tmp_path).read_text()
    assert "assign y = s ? b : a;" in text, text
    assert "[1:0][63:0]" not in text and "[3:0][63:0]" in text, text
