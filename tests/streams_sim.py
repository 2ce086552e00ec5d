"""Shared random-stall simulation of every stream block (one Verilator build per session).

The bench holds every block (and one mutant of each, to show the checks can fail),
runs RUNS (seed, valid density, ready density) patterns of CYCLES cycles each, and
the tests check the transfers against Python models of the blocks."""

from __future__ import annotations

import fcntl
import pickle
import shutil
import uuid

import magma  # noqa: F401  (loaded at collection, before any test can break PATH)
import pytest

from magma_llama import paths

CYCLES = 1200
# (seed, how often sources offer, how often sinks accept), out of 256
RUNS = [(0x1234, 128, 128), (0xBEEF, 250, 250), (0x0042, 250, 40), (0x7A11, 40, 250),
        (0x5EED, 190, 110), (0x0C0F, 100, 200)]

N_FORK, N_JOIN, N_ARB, N_DEMUX, N_UP, N_DOWN, K_PACKET = 3, 2, 3, 3, 3, 3, 3
FORK_PICK = (1, 0, 1)        # fork_pick: output k takes 4-bit element FORK_PICK[k] of an 8-bit beat
FIFO_DEPTHS = (1, 3, 4)


def devices():
    """{label: circuit} of the bench; labels ending in `_mut` are broken on purpose."""
    import magma as m
    from magma_llama.streams import (Arbiter, Demux, Downsize, Fifo, Fork, Join, Packetize, Pipe,
                                     Skid, Upsize, ZipWith)
    from magma_llama.formal.stream_designs import Chain
    B8, B4 = m.Bits[8], m.Bits[4]
    d = {
        "pipe": Pipe(B8), "pipe_mut": Pipe(B8, "overwrite"),
        "skid": Skid(B8), "skid_mut": Skid(B8, "drop"),
        **{f"fifo{k}": Fifo(B8, k) for k in FIFO_DEPTHS},
        "fifo3_mut": Fifo(B8, 3, "full_off_by_one"),
        "fork": Fork(B8, N_FORK), "fork_mut": Fork(B8, N_FORK, "twice"),
        "fork_pick": Fork(B4, N_FORK, pick=FORK_PICK),
        "join": Join(B4, N_JOIN), "join_mut": Join(B4, N_JOIN, "eager"),
        "zip": ZipWith(B8), "zip_eager": ZipWith(B8, mutant="eager"), "zip_overwrite": ZipWith(B8, mutant="overwrite"),
        "arb": Arbiter(B8, N_ARB), "arb_mut": Arbiter(B8, N_ARB, "fixed_priority"),
        "demux": Demux(B8, N_DEMUX), "demux_mut": Demux(B8, N_DEMUX, "broadcast"),
        "up": Upsize(B4, N_UP), "up_mut": Upsize(B4, N_UP, "drop"),
        "down": Downsize(B4, N_DOWN), "down_mut": Downsize(B4, N_DOWN, "short"),
        "pkt": Packetize(B8, K_PACKET), "pkt_mut": Packetize(B8, K_PACKET, "count_valid"),
        "chain": Chain, "roundtrip": _roundtrip(), "forkjoin": _forkjoin(),
    }
    return d


def _roundtrip():
    """Chain API: upsize then downsize then pipe is the identity on beats."""
    import magma as m
    from magma_llama.streams import S, StreamIn, StreamOut

    class RoundTrip(m.Circuit):
        io = m.IO(I=StreamIn(m.Bits[4]), O=StreamOut(m.Bits[4])) + m.ClockIO(has_reset=True)
        S(io.I).upsize(N_UP).downsize().pipe() >> io.O
    return RoundTrip


def _forkjoin():
    """Chain API: fork in two, delay one side in a queue, join again: pairs (x, x)."""
    import magma as m
    from magma_llama.streams import S, StreamIn, StreamOut

    class ForkJoin(m.Circuit):
        io = m.IO(I=StreamIn(m.Bits[4]), O=StreamOut(m.Tuple[m.Bits[4], m.Bits[4]])) + m.ClockIO(has_reset=True)
        a, b = S(io.I).fork(2)
        a.queue(2).join(b.skid()) >> io.O
    return ForkJoin


def _rom(label, port, widths, rng):
    if label.startswith("demux") and port == "I":
        # Routed payload: sel (low bits) must name an existing output
        sw = widths[0]
        return [rng.randrange(N_DEMUX) | (rng.getrandbits(widths[1]) << sw) for _ in range(256)]
    return None


class Sim:
    def __init__(self, infos, extras, runs):
        self.infos, self.extras, self.runs = infos, extras, runs

    def ports(self, label):
        return {i.port: i for i in self.infos.values() if i.dut == label}


def once_per_test_run(request, name: str, compute):
    """compute(workdir) once per pytest run, shared by xdist workers through a pickle under
    build/tests/ guarded by a file lock (keyed by the run's id, so never stale)."""
    worker = getattr(request.config, "workerinput", None)
    runid = worker["testrunuid"] if worker else uuid.uuid4().hex
    root = paths.build_dir() / "tests" / name
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = root / f"{runid}.pickle"
        if cache.exists():
            return pickle.loads(cache.read_bytes())
        for old in root.iterdir():   # earlier runs (we hold the lock, nobody reads them)
            if old.name != "lock":
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        value = compute(root / runid)
        cache.write_bytes(pickle.dumps(value))
        return value


def _simulate(workdir):
    from magma_llama.streams.testbench import make_bench, run_bench
    bench, infos, extras = make_bench(devices(), rom_fn=_rom)
    runs = run_bench(bench, infos, extras, RUNS, CYCLES, workdir)
    return Sim(infos, extras, runs)


@pytest.fixture(scope="session")
def stream_sim(request) -> Sim:
    return once_per_test_run(request, "stream_bench", _simulate)


# ----------------------------------------------------------------------------------------
# checks shared by the per-block tests

class ModelMismatch(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise ModelMismatch(msg)


def check_protocol(sim: Sim, label: str, run) -> None:
    """The stream rule on every port of the device, from the trace: no valid in the first
    cycle after reset; once valid, valid and data held until the transfer.  A port in
    run_bench's `unprinted` has no data in the log: only its valid is checked."""
    rows = run.rows
    for info in sim.ports(label).values():
        k = info.key
        valid, ready, data = f"{k}_valid", f"{k}_ready", f"{k}_data"
        logged = data in rows[0]
        check(rows[0][valid] == 0, f"{k}: valid in the first cycle after reset")
        for t in range(1, len(rows)):
            a, b = rows[t - 1], rows[t]
            if a[valid] and not a[ready]:
                check(b[valid] == 1, f"{k}: valid dropped before transfer at cycle {t}")
                check(not logged or b[data] == a[data], f"{k}: data changed while stalled at cycle {t}")


def fire_cycles(run, key):
    return [t for t, r in enumerate(run.rows) if r[f"{key}_valid"] and r[f"{key}_ready"]]


def source_prefix(sim: Sim, run, key) -> list[int]:
    """The beats a source sent, checked against the beats it was meant to send."""
    info = sim.infos[key]
    got = run.transfers(key)
    want = [info.beat(k, run.seed) for k in range(len(got))]
    check(got == want, f"{key}: the source's beats are not the ROM sequence")
    return got


def check_all_runs(sim, label, model, min_beats=50):
    """Run `model(sim, label, run) -> beats out` on every run; each run must move beats."""
    total = 0
    for run in sim.runs:
        check_protocol(sim, label, run)
        moved = model(sim, label, run)
        check(moved >= min_beats or run.rdensity < 64 or run.vdensity < 64,
              f"{label}: only {moved} beats moved in run seed={run.seed:#x}")
        total += moved
    return total


def expect_mutant_caught(sim, label, model):
    with pytest.raises(ModelMismatch):
        check_all_runs(sim, label, model)


# ----------------------------------------------------------------------------------------
# models

def fifo_like(capacity):
    """In order, nothing lost or duplicated, at most `capacity` beats inside."""
    def model(sim, label, run):
        ins = source_prefix(sim, run, f"{label}_I")
        outs = run.transfers(f"{label}_O")
        check(outs == ins[:len(outs)], f"{label}: output beats differ from input beats (seed {run.seed:#x})")
        check(0 <= len(ins) - len(outs) <= capacity, f"{label}: {len(ins) - len(outs)} beats inside")
        # never more inside than capacity, at any cycle
        ci, co = fire_cycles(run, f"{label}_I"), fire_cycles(run, f"{label}_O")
        for j, t in enumerate(co):
            check(ci[j] < t, f"{label}: beat {j} left before it arrived")
        for j in range(capacity, len(ci)):
            check(len(co) > j - capacity and co[j - capacity] <= ci[j],
                  f"{label}: more than {capacity} beats inside at cycle {ci[j]}")
        return len(outs)
    return model


def fifo_count_model(depth):
    base = fifo_like(depth)

    def model(sim, label, run):
        n = base(sim, label, run)
        inside = 0
        for t, r in enumerate(run.rows):
            check(r[f"{label}_count"] == inside, f"{label}: count {r[f'{label}_count']} != {inside} at {t}")
            inside += (r[f"{label}_I_valid"] & r[f"{label}_I_ready"]) - (r[f"{label}_O_valid"] & r[f"{label}_O_ready"])
        return n
    return model


def fork_model(n, pick=None, elem_bits=4):
    """Each output gets every input beat exactly once, in order; the input beat completes
    only after every output has it.  pick: output k gets element pick[k] of the beat."""
    def part(beat, k):
        return beat if pick is None else beat >> (elem_bits * pick[k]) & ((1 << elem_bits) - 1)

    def model(sim, label, run):
        ins = source_prefix(sim, run, f"{label}_I")
        src = sim.infos[f"{label}_I"]
        ci = fire_cycles(run, f"{label}_I")
        for k in range(n):
            outs = run.transfers(f"{label}_O{k}")
            # the input beat in flight may already have reached this output
            want = [part(src.beat(j, run.seed), k) for j in range(len(outs))]
            check(outs == want, f"{label}.O{k}: beats differ from the input (seed {run.seed:#x})")
            check(len(ins) <= len(outs) <= len(ins) + 1, f"{label}.O{k}: {len(outs)} beats for {len(ins)} inputs")
            co = fire_cycles(run, f"{label}_O{k}")
            for j, t in enumerate(ci):
                check(co[j] <= t, f"{label}: input beat {j} completed before O{k} took it")
            for j in range(1, len(co)):
                check(j - 1 < len(ci) and ci[j - 1] < co[j], f"{label}.O{k}: took beat {j} twice or too early")
        return len(ins)
    return model


def forkjoin_model(sim, label, run):
    """Each input beat comes out once, as the pair (x, x), in order."""
    ins = source_prefix(sim, run, f"{label}_I")
    info = sim.infos[f"{label}_O"]
    outs = [info.split(v) for v in run.transfers(f"{label}_O")]
    check(outs == [(x, x) for x in ins[:len(outs)]], f"{label}: pairs are not (x, x) in input order")
    check(0 <= len(ins) - len(outs) <= 3, f"{label}: {len(ins) - len(outs)} beats inside")
    return len(outs)


def join_model(n):
    def model(sim, label, run):
        lanes = [source_prefix(sim, run, f"{label}_I{k}") for k in range(n)]
        info = sim.infos[f"{label}_O"]
        outs = [info.split(v) for v in run.transfers(f"{label}_O")]
        for k in range(n):
            check([o[k] for o in outs] == lanes[k], f"{label}: lane {k} of the tuples differs from input {k}")
            check(fire_cycles(run, f"{label}_I{k}") == fire_cycles(run, f"{label}_O"),
                  f"{label}: input {k} consumed without a tuple leaving")
        return len(outs)
    return model


def _zip_outputs(sim, label, run, fn, ports, inside: int):
    """The inputs of a join moved in the same cycles, output beat k is fn(A beats, B beats)[k],
    and at most `inside` pairs are unanswered.  Returns (O beats, A's fire cycles, O's)."""
    pa, pb, po = (f"{label}_{p}" for p in ports)
    a, b = source_prefix(sim, run, pa), source_prefix(sim, run, pb)
    fa, fo = fire_cycles(run, pa), fire_cycles(run, po)
    check(fa == fire_cycles(run, pb), f"{label}: {ports[0]} and {ports[1]} did not move together")
    outs = run.transfers(po)
    check(0 <= len(a) - len(outs) <= inside, f"{label}: {len(a) - len(outs)} pairs unanswered")
    want = list(fn(a[:len(outs)], b[:len(outs)]))
    bad = [k for k, (x, y) in enumerate(zip(outs, want)) if x != y]
    check(not bad, f"{label} seed {run.seed:#x}: beat {bad[:1]} gave {[outs[k] for k in bad[:1]]}, "
                   f"golden {[want[k] for k in bad[:1]]}")
    return outs, fa, fo


def check_zip_with(sim, label, run, fn, ports=("A", "B", "O")) -> list[int]:
    """The contract of streams.ZipWith (and the stages built on it) from the trace: the
    inputs move in the same cycles, output beat k is fn(A beats, B beats)[k] (fn maps two
    lists of packed beats to the packed results), at most one result inside, and O.valid
    and both readys follow the one-register join cycle by cycle.  Returns the O beats."""
    pa, pb, po = (f"{label}_{p}" for p in ports)
    outs, fa, fo = _zip_outputs(sim, label, run, fn, ports, 1)
    held, fa, fo = 0, set(fa), set(fo)
    for t, r in enumerate(run.rows):
        check(r[f"{po}_valid"] == (held > 0), f"{label}: {ports[2]}.valid wrong at cycle {t}")
        free = held == 0 or r[f"{po}_ready"]
        check(r[f"{pa}_ready"] == (free and r[f"{pb}_valid"]), f"{label}: {ports[0]}.ready wrong at cycle {t}")
        check(r[f"{pb}_ready"] == (free and r[f"{pa}_valid"]), f"{label}: {ports[1]}.ready wrong at cycle {t}")
        held += (t in fa) - (t in fo)
    return outs


def check_credited_zip(sim, label, run, fn, stages: int, ports=("A", "B", "O")) -> list[int]:
    """A join into a `stages.pipeline.Credited` pipeline of `stages` register stages, cycle by
    cycle: a pair that moves at cycle t is in the result FIFO from t + stages + 1, O.valid is
    high while the FIFO holds one, and both readys are the credit (fewer pairs owed than the
    FIFO's depth, `credited_depth`) and the other input's valid.  Returns the O beats."""
    from magma_llama.stages.pipeline import credited_depth
    depth = credited_depth(stages)
    pa, pb, po = (f"{label}_{p}" for p in ports)
    outs, fa, fo = _zip_outputs(sim, label, run, fn, ports, depth)
    entered, fo = list(fa), set(fo)
    fa = set(fa)
    owed = left = 0
    for t, r in enumerate(run.rows):
        pushed = sum(1 for e in entered if e <= t - stages - 1)
        check(r[f"{po}_valid"] == (pushed - left > 0), f"{label}: {ports[2]}.valid wrong at cycle {t}")
        room = owed != depth
        check(r[f"{pa}_ready"] == (room and r[f"{pb}_valid"]), f"{label}: {ports[0]}.ready wrong at cycle {t}")
        check(r[f"{pb}_ready"] == (room and r[f"{pa}_valid"]), f"{label}: {ports[1]}.ready wrong at cycle {t}")
        owed += (t in fa) - (t in fo)
        left += t in fo
    return outs


def zip_with_xor_model(sim, label, run):
    """ZipWith's default function: A ^ B."""
    return len(check_zip_with(sim, label, run, lambda a, b: [x ^ y for x, y in zip(a, b)]))


def arbiter_model(n):
    """Cycle model of round robin with a lock while stalled, plus the spec: every output beat
    is the beat an input hands over in that cycle, each input in order, and a waiting input
    sees fewer than n other beats go first."""
    def model(sim, label, run):
        for k in range(n):
            source_prefix(sim, run, f"{label}_I{k}")
        prio, lock, lock_idx = 0, False, 0
        waits = [0] * n
        moved = 0
        for t, r in enumerate(run.rows):
            valid = [r[f"{label}_I{k}_valid"] for k in range(n)]
            if lock:
                grant = lock_idx
            else:
                order = [(prio + j) % n for j in range(n)]
                grant = next((k for k in order if valid[k]), order[-1])
            ov, ordy = r[f"{label}_O_valid"], r[f"{label}_O_ready"]
            check(ov == valid[grant], f"{label}: out valid {ov} at cycle {t}, model grant {grant}")
            fired = [r[f"{label}_I{k}_valid"] and r[f"{label}_I{k}_ready"] for k in range(n)]
            if ov and ordy:
                check(fired == [k == grant for k in range(n)], f"{label}: cycle {t}: inputs fired {fired}, model grant {grant}")
                check(r[f"{label}_O_data"] == r[f"{label}_I{grant}_data"], f"{label}: data of the wrong input at {t}")
                moved += 1
                for k in range(n):
                    waits[k] = 0 if (k == grant or not valid[k]) else waits[k] + 1
                    check(waits[k] < n, f"{label}: input {k} waited {waits[k]} grants")
                prio = (grant + 1) % n
            else:
                check(not any(fired), f"{label}: an input fired without the output at cycle {t}")
                for k in range(n):
                    if not valid[k]:
                        waits[k] = 0
            lock, lock_idx = bool(ov and not ordy), grant
        return moved
    return model


def demux_model(n):
    def model(sim, label, run):
        ins = [sim.infos[f"{label}_I"].split(v) for v in source_prefix(sim, run, f"{label}_I")]
        for k in range(n):
            outs = run.transfers(f"{label}_O{k}")
            check(outs == [d for s, d in ins if s == k], f"{label}.O{k}: not the beats addressed to it")
        fired = sorted(t for k in range(n) for t in fire_cycles(run, f"{label}_O{k}"))
        check(fired == fire_cycles(run, f"{label}_I"), f"{label}: input and output transfers differ")
        return len(ins)
    return model


def upsize_model(n):
    def model(sim, label, run):
        ins = source_prefix(sim, run, f"{label}_I")
        info = sim.infos[f"{label}_O"]
        outs = [list(info.split(v)) for v in run.transfers(f"{label}_O")]
        want = [ins[j * n:(j + 1) * n] for j in range(len(outs))]
        check(outs == want, f"{label}: wide beats are not the narrow beats in order")
        check(0 <= len(ins) - n * len(outs) <= n, f"{label}: {len(ins) - n * len(outs)} narrow beats held")
        return len(ins)
    return model


def downsize_model(n):
    def model(sim, label, run):
        info = sim.infos[f"{label}_I"]
        ins = [list(info.split(v)) for v in source_prefix(sim, run, f"{label}_I")]
        flat = [x for beat in ins for x in beat]
        outs = run.transfers(f"{label}_O")
        check(outs == flat[:len(outs)], f"{label}: narrow beats are not the wide beat's pieces in order")
        check(0 <= len(flat) - len(outs) <= n, f"{label}: {len(flat) - len(outs)} pieces held")
        return len(outs)
    return model


def packetize_model(k):
    def model(sim, label, run):
        ins = source_prefix(sim, run, f"{label}_I")
        info = sim.infos[f"{label}_O"]
        outs = [info.split(v) for v in run.transfers(f"{label}_O")]
        check([d for d, _ in outs] == ins, f"{label}: data changed on the way")
        check([last for _, last in outs] == [int(j % k == k - 1) for j in range(len(outs))],
              f"{label}: last not on every {k}th beat")
        return len(outs)
    return model


DENSE_RUN = 1   # RUNS[1]: sources and sinks both ready ~98% of cycles


def rate(sim: Sim, label: str, direction: str) -> float:
    """Beats per cycle through the device's `direction` ports in the dense run."""
    run = sim.runs[DENSE_RUN]
    beats = sum(len(run.transfers(i.key)) for i in sim.ports(label).values() if i.direction == direction)
    return beats / len(run.rows)
