"""`magma-llama report`: one self-contained HTML page about the design on one model.

Sections: the model's config, fidelity (integer golden vs the float reference, and the
RTL vs golden/run.c), the proof table, weight-port utilisation, the Yosys resource
summary of the whole decoder, ECP5 synthesis (resources and post-route Fmax per stage,
their totals against the device) and the timeline picture of one token.  Each section is
one subprocess of a command or benchmark that already exists (their --json outputs),
so the page shows exactly what those print; a section that fails shows its error and
the page is still written (exit 1).  `--quick` runs each with small settings
(docs/report.md lists them); the timeline PNG is embedded as base64.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from magma_llama.errors import UsageError

SECTIONS = ("fidelity", "rtl_fidelity", "proofs", "utilisation", "yosys", "synthesis", "timeline")
QUICK_PROOFS = ("pipe", "fifo", "zip_with")
QUICK_SYNTH = ("argmax", "residual")          # quick: two small stages, one placer seed
SYNTH_COLUMNS = ("name", "module", "instances", "lut", "ff", "dsp", "bram", "dram", "fmax_mhz", "fmax_seeds", "fits")
SYNTH_HEADERS = {"instances": "x", "lut": "LUT4", "ff": "FF", "dsp": "MULT18X18D", "bram": "DP16KD",
                 "dram": "DPR16X4", "fmax_mhz": "Fmax MHz (median)", "fmax_seeds": "per seed"}
UTILISATION_COLUMNS = ("model", "lanes", "weights", "positions", "latency", "bytes_per_cycle", "cycles_per_token",
                       "predicted", "error", "bound", "utilisation", "port_utilisation", "sim_tokens_per_s")
UTILISATION_HEADERS = {"cycles_per_token": "cycles/token (measured)", "predicted": "model (perf.py)",
                       "error": "model/measured - 1", "bound": "weight-port bound", "utilisation": "bound/measured",
                       "port_utilisation": "WDATA beats/cycle", "sim_tokens_per_s": "simulated tok/s"}


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="one HTML page: config, fidelity, proofs, utilisation, "
                              "Yosys summary, timeline")
    p.add_argument("--out", default="report.html", help="the HTML file (default report.html)")
    p.add_argument("-m", "--model", help="llama2.c checkpoint (default: the models folder's stories260K.bin)")
    p.add_argument("-z", "--tokenizer", help="tokenizer.bin (default: the models folder's tok512.bin)")
    p.add_argument("--lanes", type=int, default=16, help="MatVec lanes (default 16)")
    p.add_argument("--weights", choices=("w8", "w16", "w24"), default="w16", help="weight format (default w16)")
    p.add_argument("--quick", action="store_true", help="small settings for every section (minutes, not an hour)")
    p.add_argument("--skip", action="append", default=[], metavar="SECTION",
                   help="leave a section out (repeatable): " + ", ".join(SECTIONS))
    p.set_defaults(func=cmd_report)


@dataclass
class Section:
    key: str
    title: str
    command: list[str]
    note: str = ""
    ok: bool = False
    seconds: float = 0.0
    stdout: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)


CLI_MAIN = "import sys; from magma_llama.cli import main; sys.exit(main())"


def _cli() -> list[str]:
    return [sys.executable, "-c", CLI_MAIN]


def _bench(name: str) -> list[str]:
    from magma_llama import paths
    return [sys.executable, str(paths.REPO / "benchmarks" / name)]


def plan(args, model: str, tokenizer: str, png: Path) -> list[Section]:
    """The sections' commands (quick or full settings)."""
    q = args.quick
    mz = ["--model", model, "--tokenizer", tokenizer]
    secs = [
        Section("fidelity", "Fidelity: integer golden model vs the float reference (= llama2.c)",
                _bench("fidelity.py") + mz + ["--json"] + (["--formats", args.weights, "--steps", "32"] if q else []),
                "benchmarks/fidelity.py: leading = generated tokens equal to the reference's from the start; "
                "forced = teacher-forced top-1 agreement; logit errors over the teacher-forced run."),
        Section("rtl_fidelity", "Fidelity: the RTL (Verilator) vs golden and run.c",
                _bench("rtl_fidelity.py") + ["--json", "--lanes", str(args.lanes)]
                + (["--formats", args.weights, "--steps", "16"] if q else []),
                "benchmarks/rtl_fidelity.py on the default model: generate --ids against golden --ids and "
                "llama2.c's run.c ids (tests/data/runc_oracle.json)."),
        Section("proofs", "Formal proofs (SymbiYosys + z3, k-induction), mutants and covers",
                _cli() + ["prove", "--json"] + (list(QUICK_PROOFS) if q else []),
                "magma-llama prove --json" + (f" {' '.join(QUICK_PROOFS)} (quick: three designs)" if q else
                                              " (every design)")),
        Section("utilisation", "Weight-port utilisation (measured vs model vs bound)",
                _bench("bandwidth.py") + ["--json", "--models", "stories260K", "--lanes", str(args.lanes),
                                          "--weights", args.weights] + (["--positions", "4"] if q else []),
                "benchmarks/bandwidth.py on stories260K"),
        Section("yosys", "Yosys resource summary of the whole decoder",
                _cli() + ["emit", "--model", model, "--lanes", str(args.lanes), "--weights", args.weights,
                          "--stat", "--format", "verilog", "--out", str(png.parent / f"emit-{os.getpid()}")],
                "magma-llama emit --model --stat: coarse word-level cells (no technology mapping)"),
        Section("synthesis", "ECP5 synthesis and place-and-route, per stage (LFE5UM5G-85F)",
                _cli() + ["synth", "--json", "--model", model, "--lanes", str(args.lanes), "--weights", args.weights]
                + (["--seeds", "1", *QUICK_SYNTH] if q else []),
                "magma-llama synth --json: yosys synth_ecp5 and nextpnr-ecp5, out of context, each stage alone "
                + ("(quick: two small stages, one seed)" if q else "(every stage, 3 placer seeds; cached "
                   "under build/synth/, about an hour the first time)")
                + "; the total row is the stages side by side (x = instances in the decoder)"),
        Section("timeline", "Timeline of one token",
                _cli() + ["generate"] + mz + ["--lanes", str(args.lanes), "--weights", args.weights, "-t", "0",
                                              "-n", "4" if q else "16", "--ids", "--timeline", str(png),
                                              "--timeline-text"],
                "magma-llama generate --timeline: the last position of the run, a row per unit "
                "(docs/waveforms.md defines busy, stalled, blocked)"),
    ]
    return [s for s in secs if s.key not in args.skip]


class _Progress:
    """`[k/n] section... N s` on stderr (rewritten in place on a terminal, one line per step otherwise)."""

    def __init__(self, total: int):
        self.total, self.tty = total, sys.stderr.isatty()

    def run(self, k: int, sec: Section) -> None:
        stop = threading.Event()
        t0 = time.monotonic()

        def tick():
            while not stop.wait(1.0):
                print(f"\r[{k}/{self.total}] {sec.key}... {time.monotonic() - t0:.0f} s", end="",
                      file=sys.stderr, flush=True)
        if self.tty:
            th = threading.Thread(target=tick, daemon=True)
            th.start()
        else:
            print(f"[{k}/{self.total}] {sec.key}...", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(sec.command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        finally:
            stop.set()
        sec.seconds = time.monotonic() - t0
        sec.stdout = proc.stdout
        sec.ok = proc.returncode == 0
        if not sec.ok:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            err = [ln for ln in lines if ln.startswith("error") or "Error" in ln]
            sec.error = (err or lines or [f"exit status {proc.returncode}"])[-1]
        sec.extra["stderr"] = proc.stderr
        end = "\r\033[K" if self.tty else ""
        print(f"{end}[{k}/{self.total}] {sec.key}: {'ok' if sec.ok else 'FAILED'} ({sec.seconds:.0f} s)",
              file=sys.stderr, flush=True)


# ---- HTML ---------------------------------------------------------------------------------

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 0.85em; }
.bad { color: #b00020; font-weight: bold; }
.good { color: #1b5e20; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 0.85em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; }
.scroll { overflow-x: auto; }
"""


def _cell(v) -> str:
    if isinstance(v, bool):
        return f'<td class="{"good" if v else "bad"}">{"yes" if v else "NO"}</td>'
    if v is None:
        return "<td>-</td>"
    if isinstance(v, float):
        return f'<td class="num">{v:,.0f}</td>' if abs(v) >= 1000 else f'<td class="num">{v:.4g}</td>'
    if isinstance(v, int):
        return f'<td class="num">{v}</td>'
    if isinstance(v, (list, dict)):
        v = json.dumps(v)
    return f"<td>{html.escape(str(v))}</td>"


def table(rows: list[dict], columns: list[str] | None = None, headers: dict | None = None) -> str:
    if not rows:
        return '<p class="note">(no rows)</p>'
    columns = columns or [k for k in rows[0] if not isinstance(rows[0][k], (list, dict))]
    head = "".join(f"<th>{html.escape((headers or {}).get(c, c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell("(BOS)" if c == "prompt" and r.get(c) == "" else r.get(c))
                                    for c in columns) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _json_rows(sec: Section) -> list[dict]:
    text = sec.stdout
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    data = json.loads(text[start:]) if start >= 0 else []
    return data if isinstance(data, list) else [data]


def _body(sec: Section, png: Path) -> str:
    if sec.key == "yosys":
        keep = [ln.strip() for ln in sec.stdout.splitlines()
                if ln.strip().split(":")[0] in ("cells", "multipliers", "adders/subtractors", "flip-flops", "memories")]
        first = sec.stdout.splitlines()[0].split()[0] if sec.stdout.strip() else ""
        return (f"<p>top module <code>{html.escape(first)}</code></p>"
                + table([{"resource": k.split(":", 1)[0], "count": k.split(":", 1)[1].strip()} for k in keep]))
    if sec.key == "timeline":
        data = base64.b64encode(png.read_bytes()).decode()
        rows = sec.extra.get("stderr", "").splitlines()
        tab = [ln for ln in rows if "|" in ln or ln.startswith("---")]
        summary = [ln for ln in rows if ln.startswith("rtl:")]
        start = next((i for i, ln in enumerate(rows) if ln.startswith("unit ")), None)
        units = []
        for ln in rows[start + 1:] if start is not None else []:
            w = ln.split()
            if len(w) == 6:
                units.append(dict(zip(("unit", "busy", "stalled", "blocked", "idle"), [w[0], *map(int, w[1:5])]),
                                  **{"busy %": float(w[5])}))
        return (f'<img alt="timeline of one token" src="data:image/png;base64,{data}">'
                + (f"<p><code>{html.escape(summary[0])}</code></p>" if summary else "")
                + ("<p>cycles per unit and state in that token:</p>" + table(units) if units else "")
                + "<details><summary>cycle table of the first positions (--timeline-text)</summary>"
                + f"<pre>{html.escape(chr(10).join(tab))}</pre></details>")
    rows = _json_rows(sec)
    if sec.key == "proofs":
        for r in rows:      # what the suite expects (formal/sby.Result.ok)
            r["as expected"] = r.get("status") == ("cex" if r.get("kind") == "mutant" else "pass")
        bad = [r for r in rows if not r["as expected"]]
        head = (f"<p>{len(rows)} jobs, {len(rows) - len(bad)} as expected (prove pass, mutant cex, cover pass)</p>")
        return head + table(rows, [c for c in ("name", "kind", "status", "seconds", "as expected") if rows and c in rows[0]])
    if sec.key == "utilisation":
        return table(rows, [c for c in UTILISATION_COLUMNS if rows and c in rows[0]], UTILISATION_HEADERS)
    if sec.key == "synthesis":
        return _synthesis(rows)
    return table(rows)


def _synthesis(rows: list[dict]) -> str:
    """The per-stage table, the stages' totals (times their instances) against the device, and
    each stage's critical path."""
    from magma_llama.verilog.ecp5 import DEVICE
    shown = [{**{c: r.get(c) for c in SYNTH_COLUMNS},
              "fmax_seeds": " ".join(f"{f:.1f}" for f in r.get("fmax_seeds") or []),
              "critical path": (f"{r['critical_path']['from']} -> {r['critical_path']['to']}"
                                if r.get("critical_path") else r.get("reason", ""))} for r in rows]
    total = {"name": "total", "module": "the stages side by side", "instances": ""}
    for k in ("lut", "ff", "dsp", "bram", "dram"):
        vals = [r[k] * r["instances"] for r in rows if r.get(k) is not None]
        total[k] = sum(vals) if vals else None
    placed = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz") is not None]
    total["fmax_mhz"] = min(placed) if placed else None
    total["fmax_seeds"] = "(slowest)"
    total["fits"] = all(total[k] is None or total[k] <= DEVICE.capacity[k] for k in DEVICE.capacity)
    device = {"name": f"device {DEVICE.name}", "module": "capacity", "instances": "",
              **DEVICE.capacity, "fmax_mhz": None, "fmax_seeds": "", "fits": ""}
    cols = [*SYNTH_COLUMNS, "critical path"]
    return table(shown + [total, device], cols, SYNTH_HEADERS)


def render(config: dict, sections: list[Section], png: Path, quick: bool) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>magma-llama report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>magma-llama report</h1>",
             f"<p class='note'>{time.strftime('%Y-%m-%d %H:%M:%S')}{' &middot; quick settings' if quick else ''}"
             f" &middot; <code>{html.escape(' '.join(sys.argv[1:]) or 'report')}</code></p>",
             "<h2>Config</h2>", table([{"field": k, "value": v} for k, v in config.items()])]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts.append(f"<p class='note'>{html.escape(sec.note)} &middot; {sec.seconds:.0f} s &middot; "
                     f"<code>{html.escape(' '.join(_shown(sec.command)))}</code></p>")
        if not sec.ok:
            parts.append(f"<p class='bad'>failed: {html.escape(sec.error)}</p>")
        try:
            if sec.ok or (sec.key == "proofs" and sec.stdout.strip()):
                parts.append(_body(sec, png))
        except (ValueError, KeyError, IndexError, OSError) as e:
            parts.append(f"<p class='bad'>could not read the output: {html.escape(str(e))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _shown(cmd: list[str]) -> list[str]:
    """A command as a user would type it."""
    if cmd[:3] == _cli():
        return ["magma-llama", *cmd[3:]]
    if cmd and cmd[0] == sys.executable:
        from magma_llama import paths
        return ["python", os.path.relpath(cmd[1], paths.REPO), *cmd[2:]]
    return cmd


def cmd_report(args) -> int:
    from magma_llama import paths
    from magma_llama.io.checkpoint import read_header

    if not args.out.lower().endswith((".html", ".htm")):
        raise UsageError(f"--out {args.out}: the file must end in .html")
    bad = [s for s in args.skip if s not in SECTIONS]
    if bad:
        raise UsageError(f"--skip {bad[0]}: not a section")
    if args.lanes < 1:
        raise UsageError(f"lanes must be >= 1, got {args.lanes}")
    model = args.model or str(paths.default_model())
    tokenizer = args.tokenizer or str(paths.default_tokenizer())
    for what, path in (("model", model), ("tokenizer", tokenizer)):
        if not os.path.isfile(path):
            raise UsageError(f"{what} {path}: no such file")
    cfg = read_header(model)
    config = {"model": model, "tokenizer": tokenizer, "lanes": args.lanes, "weights": args.weights,
              **{k: getattr(cfg, k) for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                              "head_size", "kv_dim", "vocab_size", "seq_len", "shared_classifier")}}
    work = paths.build_dir() / "report"
    work.mkdir(parents=True, exist_ok=True)
    png = (work / f"timeline-{os.getpid()}.png").resolve()
    sections = plan(args, model, tokenizer, png)
    progress = _Progress(len(sections))
    for k, sec in enumerate(sections, 1):
        progress.run(k, sec)
    Path(args.out).write_text(render(config, sections, png, args.quick))
    if png.exists():
        png.unlink()
    shutil.rmtree(work / f"emit-{os.getpid()}", ignore_errors=True)     # per run: two reports may run at once
    failed = [s.key for s in sections if not s.ok]
    print(f"report: {args.out}" + (f" (failed: {', '.join(failed)})" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
