"""`magma-llama report`: every section on the page, from real runs (quick settings, a synthetic
model; the two benchmarks fixed to stories260K are skipped here and run by `report` itself)."""

from __future__ import annotations

import base64
import html
import re

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def page(synthetic, tmp_path_factory):
    model, tok = synthetic("gqa_unshared")
    out = tmp_path_factory.mktemp("report") / "r.html"
    p = run_cli("report", "--quick", "--out", out, "-m", model, "-z", tok, "--lanes", 16, "--weights", "w8",
                "--skip", "rtl_fidelity", "--skip", "utilisation")
    return p, out.read_text(), model


def test_report_has_every_section(page):
    proc, text, model = page
    assert proc.returncode == 0, proc.stderr
    heads = re.findall(r"<h2>(.*?)</h2>", text)
    assert [h.split(":")[0].split(" ")[0] for h in heads] == ["Config", "Fidelity", "Formal", "Yosys", "ECP5",
                                                              "Timeline"]
    assert "failed:" not in text
    assert html.escape(model) in text
    # progress lines on stderr (not a terminal: one line per step), never on stdout
    assert re.findall(r"^\[(\d)/5\] (\w+): ok", proc.stderr, re.M) == [
        ("1", "fidelity"), ("2", "proofs"), ("3", "yosys"), ("4", "synthesis"), ("5", "timeline")]
    assert proc.stdout == ""


def test_report_sections_carry_the_measurements(page):
    _, text, _ = page
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert base64.b64decode(png.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    proofs = re.search(r"<p>(\d+) jobs, (\d+) as expected", text)
    assert proofs and proofs.group(1) == proofs.group(2) and int(proofs.group(1)) >= 9
    assert re.search(r"<td>multipliers</td>", text) and re.search(r"<td>memories</td>", text)
    assert "EMB" in text and "matvec" in text        # the cycle table and the per-unit totals
    # synthesis: the quick stages with their post-route Fmax, the totals and the device's capacity
    synth = text[text.index("<h2>ECP5"):text.index("<h2>Timeline")]
    for stage in ("argmax", "residual", "total", "device LFE5UM5G-85F"):
        assert f"<td>{stage}</td>" in synth, stage
    num = '<td class="num">'
    assert re.search(rf"<td>Argmax_n300</td>{num}1</td>({num}\d+</td>){{5}}{num}\d+(\.\d+)?</td>", synth), synth


@pytest.mark.parametrize("args, message", [
    (("--out", "r.txt"), "--out r.txt: the file must end in .html"),
    (("--skip", "nothing"), "--skip nothing: not a section"),
    (("-m", "/nonexistent.bin"), "model /nonexistent.bin: no such file"),
])
def test_report_bad_flags(args, message):
    p = run_cli("report", *args)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"error: {message}"]
