"""The shipped default model, the checksums checked on load, `fetch-model` against a local HTTP
server (no test reaches the internet), and `demo` from a copy of the repository with nothing beside it."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from magma_llama import paths
from magma_llama.io import catalog
from magma_llama.io.files import file_sha256
from tests.conftest import CLI, assert_cli_error, run_cli

SHIPPED = ("stories260K.bin", "tok512.bin")


def test_default_model_ships_in_models_and_matches_its_checksum():
    for name in SHIPPED:
        path = paths.REPO / "models" / name
        assert path.exists(), f"{name} must ship in models/"
        assert file_sha256(path).hex() == catalog.PUBLISHED[name].sha256
        assert paths.model_file(name) == path     # models/ is read first


def test_a_corrupted_published_file_is_refused_on_load(tmp_path):
    bad = bytearray((paths.REPO / "models" / "stories260K.bin").read_bytes())
    bad[1000] ^= 1      # one bit of one weight: the header and size still look right
    model = tmp_path / "stories260K.bin"
    model.write_bytes(bytes(bad))
    proc = run_cli("golden", "--model", model, "--tokenizer", paths.REPO / "models" / "tok512.bin",
                   "-n", "2", "--ids")
    assert_cli_error(proc, "SHA-256", "stories260K.bin", "fetch-model")
    # the same bytes under another name are the user's own checkpoint: not checked
    own = tmp_path / "mine.bin"
    own.write_bytes(bytes(bad))
    ok = run_cli("golden", "--model", own, "--tokenizer", paths.REPO / "models" / "tok512.bin", "-n", "2", "--ids")
    assert ok.returncode == 0, ok.stderr


def test_published_shape_check_without_a_checksum(tmp_path, synthetic):
    """stories42M has no published checksum: a file of another shape under its name is refused."""
    model, _ = synthetic("tiny", 0)
    fake = tmp_path / "stories42M.bin"
    shutil.copy(model, fake)
    assert catalog.problem(catalog.PUBLISHED["stories42M.bin"], fake)
    with pytest.raises(catalog.ChecksumError):
        catalog.verify(fake)


# --- fetch-model against 127.0.0.1 ---------------------------------------------------------------
class _Server:
    """Serves files from a dict {path: bytes}, honouring Range requests, and logs what it was asked."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Range")))
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(synthetic):
    model, _ = synthetic("tiny", 3)
    good = Path(model).read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x40
    s = _Server({"/good.bin": good, "/bad.bin": bytes(bad)})
    s.good = good
    yield s
    s.close()


def _fetch(tmp_path, server, name, path, *extra):
    return run_cli("fetch-model", name, "--url", f"{server.url}{path}", "--out", tmp_path, *extra)


def test_fetch_model_downloads_and_checks(tmp_path, server):
    sha = hashlib.sha256(server.good).hexdigest()
    proc = _fetch(tmp_path, server, "tiny.bin", "/good.bin", "--sha256", sha)
    assert proc.returncode == 0, proc.stderr
    got = tmp_path / "tiny.bin"
    assert proc.stdout.strip() == str(got) and got.read_bytes() == server.good
    assert not (tmp_path / "tiny.bin.part").exists()


def test_fetch_model_refuses_a_corrupted_download(tmp_path, server):
    sha = hashlib.sha256(server.good).hexdigest()
    proc = _fetch(tmp_path, server, "tiny.bin", "/bad.bin", "--sha256", sha)
    assert_cli_error(proc, "refused", "SHA-256")
    assert not (tmp_path / "tiny.bin").exists() and not (tmp_path / "tiny.bin.part").exists()
    # a published name served with the wrong bytes: refused by the table's own checksum
    proc = _fetch(tmp_path, server, "stories15M", "/good.bin")
    assert_cli_error(proc, "refused", "stories15M.bin")
    assert not (tmp_path / "stories15M.bin").exists()


def test_fetch_model_resumes_a_partial_download(tmp_path, server):
    sha = hashlib.sha256(server.good).hexdigest()
    half = len(server.good) // 2
    (tmp_path / "tiny.bin.part").write_bytes(server.good[:half])
    proc = _fetch(tmp_path, server, "tiny.bin", "/good.bin", "--sha256", sha)
    assert proc.returncode == 0, proc.stderr
    assert server.requests == [("/good.bin", f"bytes={half}-")]
    assert (tmp_path / "tiny.bin").read_bytes() == server.good


def test_fetch_model_offline_and_bad_arguments(tmp_path, server):
    closed = server.url      # a port nobody listens on once the server is shut
    server.close()
    proc = run_cli("fetch-model", "stories15M", "--url", f"{closed}/x.bin", "--out", tmp_path, "--timeout", "5")
    assert_cli_error(proc, "cannot reach", "offline")
    assert_cli_error(run_cli("fetch-model", "nope.bin", "--out", tmp_path), "unknown model", "--sha256")
    assert_cli_error(run_cli("fetch-model", "x.bin", "--url", "http://127.0.0.1:9/x", "--sha256", "12"),
                     "64 hex digits")
    assert_cli_error(run_cli("fetch-model", "stories15M", "--timeout", "0"), "timeout")


# --- the first thing a new user runs ---------------------------------------------------------------
def _copy_repo(dest: Path) -> Path:
    """The repository's files as a clone has them (tracked, plus new files not ignored), without ../shared."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=paths.REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = paths.REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_demo_from_a_copy_with_nothing_beside_it(tmp_path):
    repo = _copy_repo(tmp_path / "alone" / "magma-llama")
    assert not (repo.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k not in (paths.MODELS_ENV, "PYTHONPATH")}
    env["MAGMA_LLAMA_BUILD"] = str(paths.build_dir())     # share the RTL build cache (keyed by the sources)
    where = subprocess.run([sys.executable, "-c", "import magma_llama.paths as p; print(p.default_model())"],
                           cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(repo / "models" / "stories260K.bin")
    proc = subprocess.run([*CLI, "demo", "-n", "32"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Once upon a time, there was a little girl named Lily."), proc.stdout
    assert "synthetic" not in proc.stderr

    # with models/ emptied: the synthetic fallback says so and clamps the steps to its seq_len
    for name in SHIPPED:
        (repo / "models" / name).unlink()
    proc = subprocess.run([*CLI, "demo"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "random weights" in proc.stderr and "64 steps" in proc.stderr, proc.stderr
    assert "rtl: 64 tokens" in proc.stderr, proc.stderr
