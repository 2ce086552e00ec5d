"""The timeline probe, its drawing and the GTKWave layout, on a real decoder run.

One tracing build of the whole decoder for the synthetic gqa_unshared shape (L=16, w8)
serves every test: the probe's record is checked against the harness's own counters
(per-op cycles, WDATA transfers), the cycle table against the tokens the hardware gave,
the picture's pixels against the state colours, and the .gtkw signal names against the
VCD's scopes."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.conftest import run_cli

SHAPE, LANES, WEIGHTS, BITS, POSITIONS = "gqa_unshared", 16, "w8", 8, 3


@pytest.fixture(scope="module")
def run(synthetic, tmp_path_factory):
    """A traced build; a run of POSITIONS tokens with the probe on over all of them."""
    from magma_llama.decoder.build import build_rtl, weight_hex
    from magma_llama.decoder.sim import RtlDecoder
    from magma_llama.io.checkpoint import read_checkpoint
    from magma_llama.numerics.image import load_or_build
    from magma_llama.numerics.weights import weight_format

    model, tok = synthetic(SHAPE)
    ckpt = read_checkpoint(model)
    built = build_rtl(ckpt.config, LANES, BITS, trace="vcd", log=None)
    image, image_path = load_or_build(ckpt, weight_format(WEIGHTS))
    hexfile = weight_hex(image, image_path, built.layout)
    folder = tmp_path_factory.mktemp("timeline")
    record = folder / "record.txt"
    with RtlDecoder(built.binary, hexfile, plusargs=(f"+timeline={record}", "+timeline_from=0",
                                                     f"+timeline_to={POSITIONS - 1}")) as sim:
        for pos in range(POSITIONS):
            sim.step(1 if pos == 0 else sim.beats[-1].token, pos, sample=True)
        ops = sim.op_cycles()
        stats = sim.stats()
        beats = list(sim.beats)
    return dict(model=model, tok=tok, built=built, record=record, ops=ops, stats=stats, beats=beats,
                folder=folder, hexfile=hexfile)


def test_record_agrees_with_the_harness_counters(run):
    from magma_llama.decoder.timeline import read_timeline
    t = read_timeline(run["record"])
    assert t.cycles == list(range(t.cycles[0], t.cycles[0] + len(t.cycles)))   # no cycle lost or repeated
    counted = Counter(t.op)
    # the probe starts with pos 0 after reset and stops when pos leaves the window
    for op, n in enumerate(run["ops"]):
        assert abs(counted.get(op, 0) - n) <= 1, (op, counted.get(op, 0), n)
    wdata = next(i for i, (u, s, _) in enumerate(t.streams) if (u, s) == ("memory", "WDATA"))
    fires = sum(1 for b in t.bits if b >> (2 * wdata) & 3 == 3)
    assert abs(fires - run["stats"].wdata_words) <= 1
    assert sorted(set(t.pos)) == list(range(POSITIONS))


def test_states_are_a_partition_and_follow_the_ports(run):
    from magma_llama.decoder.timeline import BLOCKED, BUSY, read_timeline
    t = read_timeline(run["record"])
    states = t.states()
    assert {"matvec", "rmsnorm", "attention", "memory", "embed"} <= set(states)
    for unit, st in states.items():
        idx = [i for i, (u, _, _) in enumerate(t.streams) if u == unit]
        for c, s in enumerate(st):
            fire = any(t.bits[c] >> (2 * i) & 3 == 3 for i in idx)
            if fire:
                assert s == BUSY, (unit, c)
            if s == BLOCKED:
                assert any(t.streams[i][2] and t.bits[c] >> (2 * i) & 3 == 1 for i in idx), (unit, c)
    assert max(states["matvec"].count(BUSY), 1) > len(t.cycles) // 2    # the MatVec engine dominates a token


def test_cycle_table_follows_the_program(run):
    from magma_llama.decoder.timeline import op_names, read_timeline, text_table
    from magma_llama.decoder.top import PROGRAM
    from magma_llama.io.checkpoint import read_header
    t = read_timeline(run["record"])
    n_layers = read_header(run["model"]).n_layers
    names = op_names()
    per_layer = [op.name for op in PROGRAM if op.per_layer]
    want = ["EMB"] + per_layer * n_layers + ["NORM_FIN", "CLS"]
    tokens = {p: b.token for p, b in enumerate(run["beats"])}
    text = text_table(t, tokens)
    rows = [[c.strip() for c in line.split("|")] for line in text.splitlines()[2:]]
    for pos in range(POSITIONS):
        mine = [r for r in rows if int(r[2]) == pos]
        assert [r[4] for r in mine if r[4] != "IDLE"] == want
        assert {r[5] for r in mine} == {str(tokens[pos])}
        assert [int(r[3]) for r in mine if r[4] in per_layer] == [layer for layer in range(n_layers)
                                                                 for _ in per_layer]
    starts = [int(r[0]) for r in rows]
    lengths = [int(r[1]) for r in rows]
    assert all(a + n == b for a, n, b in zip(starts, lengths, starts[1:]))
    assert names[0] == "IDLE"


def test_picture_has_the_state_colours(run, tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    from magma_llama.decoder.timeline import BLOCKED, BUSY, COLOURS, STALLED, draw, read_timeline
    t = read_timeline(run["record"]).window([POSITIONS - 1])
    out = tmp_path / "t.png"
    draw(t, out, title="test")
    img = (mpimg.imread(out)[..., :3] * 255).round().astype(int)
    totals = t.totals()
    for state in (BUSY, STALLED, BLOCKED):
        rgb = np.array([int(COLOURS[state][i:i + 2], 16) for i in (1, 3, 5)])
        present = np.all(img == rgb, axis=-1).sum()
        assert (present > 0) == any(v[state] > 0 for v in totals.values()), state


def test_probe_off_writes_nothing(run, tmp_path):
    from magma_llama.decoder.sim import RtlDecoder
    with RtlDecoder(run["built"].binary, run["hexfile"]) as sim:
        sim.step(1, 0, sample=True)
    assert not list(tmp_path.iterdir())


def test_generate_timeline_flags_and_gtkw(run, tmp_path):
    """generate --timeline/--timeline-text/--trace: the PNG, the table on stderr, a .gtkw whose every
    signal is in the VCD."""
    png, vcd = tmp_path / "t.png", tmp_path / "run.vcd"
    p = run_cli("generate", "-m", run["model"], "-z", run["tok"], "--lanes", LANES, "--weights", WEIGHTS,
                "-t", "0", "-n", 2, "--ids", "--timeline", png, "--timeline-text", "--trace", vcd, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"^\s+\d+ \|\s+\d+ \|\s+0 \|\s+- \| EMB", p.stderr, re.M)
    gtkw = vcd.with_suffix(".gtkw").read_text()
    assert f'[dumpfile] "{vcd.resolve()}"' in gtkw
    names, scope = set(), []
    with open(vcd) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "$scope":
                scope.append(w[2])
            elif w[0] == "$upscope":
                scope.pop()
            elif w[0] == "$var":
                names.add(".".join(scope + [w[4]]))
            elif w[0] == "$enddefinitions":
                break
    signals = [ln.split("[")[0] for ln in gtkw.splitlines() if ln.startswith("TOP.")]
    assert len(signals) > 20
    assert [s for s in signals if s not in names] == []
    assert any(s.endswith("matvec.W_valid") for s in signals)


@pytest.mark.parametrize("args, message", [
    (("--timeline", "x.jpg"), "--timeline x.jpg: the file must end in .png"),
])
def test_timeline_flag_errors(stories260k, args, message):
    model, tok = stories260k
    p = run_cli("generate", "-m", model, "-z", tok, "-n", 2, *args)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"error: {message}"]


def test_every_unit_is_named_for_what_it_does(run):
    """No row of the timeline is a magma default instance name (`Skid_b16_inst0`)."""
    from magma_llama.decoder.timeline import read_timeline
    units = {u for u, _, _ in read_timeline(run["record"]).streams}
    assert {"tok_in_skid", "tok_out_skid", "matvec", "memory"} <= units, units
    assert not [u for u in units if re.search(r"_inst\d+$", u)], units
