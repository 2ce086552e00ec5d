"""`magma-llama synth`: the real Yosys synth_ecp5 and nextpnr-ecp5 (no mocks), on small designs only.

The whole decoder is a benchmark (docs/synthesis.md), never synthesised here; it is only
elaborated (once per session, cached) to resolve its unit names."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from magma_llama import paths
from magma_llama.verilog import ecp5
from tests.conftest import CLI, assert_cli_error

pytestmark = pytest.mark.slow

CONTRACT = {"name", "lut", "ff", "dsp", "bram", "fmax_mhz", "seeds", "seconds"}
ROW_KEYS = CONTRACT | {"module", "instances", "dram", "carry", "fmax_seeds", "critical_path", "fits", "reason",
                       "tool_seconds", "cached", "port_registers"}


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """One build folder for the session: the decoder is elaborated into it once."""
    return tmp_path_factory.mktemp("synth-build")


def synth_cli(build, *args):
    env = dict(os.environ, MAGMA_LLAMA_BUILD=str(build))
    return subprocess.run([*CLI, "synth", *map(str, args)], capture_output=True, text=True, env=env)


def rows_of(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def registered(body: str, ports: str) -> str:
    return f"module Dut (input CLK, {ports});\n{body}\nendmodule\n"


# a 16x16 product between registers: one MULT18X18D, and a clocked path through it
MUL = registered("""  reg [15:0] a, b; reg [31:0] p;
  always @(posedge CLK) begin a <= A; b <= B; p <= a * b; end
  assign P = p;""", "input [15:0] A, input [15:0] B, output [31:0] P")
# the same registers around an adder: no DSP
ADD = registered("""  reg [15:0] a, b; reg [16:0] p;
  always @(posedge CLK) begin a <= A; b <= B; p <= a + b; end
  assign P = p;""", "input [15:0] A, input [15:0] B, output [16:0] P")


def many_muls(n: int) -> str:
    """n registered 16x16 products: one MULT18X18D each."""
    return registered(f"""  genvar i;
  for (i = 0; i < {n}; i = i + 1) begin : m
    reg [31:0] p;
    always @(posedge CLK) p <= A[i*16 +: 16] * B[i*16 +: 16];
    assign P[i*32 +: 32] = p;
  end""", f"input [{16 * n - 1}:0] A, input [{16 * n - 1}:0] B, output [{32 * n - 1}:0] P")


def test_table_design_json_rows_and_cache(build):
    first = rows_of(synth_cli(build, "skid", "--json", "--seeds", "2"))
    assert len(first) == 1
    r = first[0]
    assert set(r) == ROW_KEYS and CONTRACT <= set(r)
    assert (r["name"], r["module"], r["seeds"], r["instances"]) == ("skid", "Skid_b8", 2, 1)
    # a skid buffer of 8-bit beats holds two beats and two valid bits in flip-flops
    assert r["ff"] >= 2 * 8 + 2 and 0 < r["lut"] < 100
    assert (r["dsp"], r["bram"]) == (0, 0)
    assert r["fits"] and r["reason"] == ""
    assert len(r["fmax_seeds"]) == 2 and all(f > 0 for f in r["fmax_seeds"])
    assert min(r["fmax_seeds"]) <= r["fmax_mhz"] <= max(r["fmax_seeds"])
    assert r["critical_path"]["from"] and r["critical_path"]["to"]
    assert not r["cached"] and r["seconds"] > 0
    again = rows_of(synth_cli(build, "skid", "--json", "--seeds", "2"))[0]
    assert again["cached"]
    assert again["seconds"] < r["seconds"] / 5
    assert {k: again[k] for k in ("lut", "ff", "fmax_mhz", "fmax_seeds")} == \
        {k: r[k] for k in ("lut", "ff", "fmax_mhz", "fmax_seeds")}
    # the cache holds the tools' logs, and the Fmax of each seed is the one nextpnr printed last
    (skid,) = [p for p in (build / "synth").iterdir() if "module Skid_b8" in _read(p / "design.v")]
    assert (skid / "yosys.log").exists()
    logged = [float(re.findall(r"Max frequency for clock 'CLK': ([\d.]+) MHz", _read(log))[-1])
              for log in skid.glob("pnr-*/nextpnr.log")]
    assert sorted(logged) == pytest.approx(sorted(r["fmax_seeds"]), abs=0.01)


def _read(path) -> str:
    return path.read_text() if path.exists() else ""


def test_multiplier_takes_a_dsp_and_an_adder_none(tmp_path):
    mul = ecp5.run(MUL, "Dut", [1], 150, root=tmp_path)
    add = ecp5.run(ADD, "Dut", [1], 150, root=tmp_path)
    assert mul.synth.count("dsp") == 1 and add.synth.count("dsp") == 0
    assert add.synth.count("carry") > 0                    # the adder is on the carry chain
    for r in (mul, add):
        assert r.fits and r.synth.count("ff") >= 32
        assert r.fmax_mhz is not None and r.fmax_mhz > 0
    assert mul.placements[0].used.get("MULT18X18D") == 1   # and nextpnr placed it on one


def test_more_dsps_than_the_device_has_is_reported_not_raised(tmp_path):
    n = ecp5.DEVICE.capacity["dsp"] + 4
    r = ecp5.run(many_muls(n), "Dut", [1, 2], 150, root=tmp_path)
    assert r.synth.ok and r.synth.count("dsp") == n       # synthesis's counts are still there
    assert not r.fits and r.fmax_mhz is None and r.fmax_seeds == []
    assert f"{n} MULT18X18D, the device has 156" in r.reason and "nextpnr" in r.reason
    assert len(r.placements) == 1                          # a second seed would not fit either


# a product straight from the ports into a register: out of context no register-to-register path
COMB = """module Dut (
  input         CLK,
                RESET,
  input  [15:0] A,
                B,
  input  [1:0][3:0] C,
  output [31:0] P
);
  reg [31:0] p;
  always @(posedge CLK) p <= RESET ? 32'h0 : A * B + C;
  assign P = p;
endmodule
"""


def test_registered_ports_time_the_paths_from_the_ports(tmp_path):
    from magma_llama.verilog.modules import ports, registered_ports
    assert ports(COMB, "Dut") == [("input", "", "CLK"), ("input", "", "RESET"), ("input", "[15:0]", "A"),
                                  ("input", "[15:0]", "B"), ("input", "[1:0][3:0]", "C"),
                                  ("output", "[31:0]", "P")]
    text, top, bits = registered_ports(COMB, "Dut")
    assert top == "Dut_ports" and bits == 1 + 16 + 16 + 8 + 32
    bare = ecp5.run(COMB, "Dut", [1], 150, root=tmp_path)
    wrapped = ecp5.run(text, top, [1], 150, root=tmp_path)
    assert bare.fits and bare.fmax_mhz is None              # only the port-to-register path: untimed
    assert wrapped.fits and wrapped.fmax_mhz is not None    # the same path between registers
    assert wrapped.synth.count("dsp") == bare.synth.count("dsp") == 1
    assert wrapped.synth.count("ff") >= bare.synth.count("ff") + bits - 8    # (yosys may merge a few)


def test_decoder_units_resolve_by_folded_instance_name(build, monkeypatch, stories260k):
    from magma_llama.commands.synth import fold, resolve
    from magma_llama.io.checkpoint import read_header
    from magma_llama.verilog.modules import modules
    monkeypatch.setenv("MAGMA_LLAMA_BUILD", str(build))
    assert (fold("attention_h3"), fold("k_cache2"), fold("tok_in_skid")) == ("attention", "k_cache", "tok_in_skid")
    cfg = read_header(str(paths.default_model()))
    (att,) = resolve(["attention_h3"], cfg, 16, 16, None)
    assert (att.name, att.top, att.instances, att.seeds) == ("attention", "Attention_hs8_T512", cfg.n_heads, 3)
    assert list(modules(att.verilog)) == ["Attention_hs8_T512"]          # that module alone
    stages = [t.name for t in resolve([], cfg, 16, 16, None)]
    assert {"matvec", "rmsnorm", "embed", "rope", "attention", "residual", "swiglu", "argmax", "sampler",
            "k_cache", "v_cache"} <= set(stages)
    assert "decoder" not in stages and not any(s.endswith("_skid") or s.endswith("_pipe") for s in stages)
    (dec,) = resolve(["decoder"], cfg, 16, 16, None)
    assert dec.seeds == 1 and dec.top.endswith("_ungated") and "module SramRE_2560x256" in dec.verilog


def test_decoder_unit_is_synthesised_as_its_own_top(build, stories260k):
    # tok_out_skid is a Skid of the 16-bit token (the table's skid carries 8 bits)
    (r,) = rows_of(synth_cli(build, "tok_out_skid", "--json", "--seeds", "1"))
    assert (r["name"], r["module"], r["instances"]) == ("tok_out_skid", "Skid_b16", 1)
    assert r["ff"] >= 2 * 16 + 2 and r["fits"] and r["fmax_mhz"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["no_such_design"], "unknown design 'no_such_design'"),
    (["skid", "--lanes", "3"], "--lanes"),
    (["skid", "--freq", "0"], "--freq"),
    (["skid", "--seeds", "0"], "seeds"),
])
def test_bad_input_is_one_error_line(build, args, fragment):
    assert_cli_error(synth_cli(build, *args), fragment)
