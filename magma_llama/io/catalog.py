"""The published llama2.c files: where each comes from and how we know a copy is whole.

One table (`PUBLISHED`) serves two jobs:

- on load, a file named as a published one is checked: its SHA-256 where one is known,
  else its header against the published shape (`verify`), so a corrupted or truncated
  download is one `error:` line, never a silently wrong story;
- `magma-llama fetch-model NAME` downloads it (`fetch`): resumable (an HTTP Range request
  continues a `.part` file), with a progress bar, checked before it takes its final name.

The SHA-256s of `stories260K.bin`, `tok512.bin` (shipped in models/) and `tokenizer.bin` were
computed here from the copies in ../shared/models; `stories15M.bin`'s is the one two public
build recipes pin independently.  For stories42M and stories110M no checksum is published
beside the file: the size and header check stands in for it.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from magma_llama.errors import ChecksumError, DownloadError, MagmaLlamaError
from magma_llama.io.checkpoint import HEADER, Config
from magma_llama.io.files import file_sha256
from magma_llama.progress import Bar

HF = "https://huggingface.co/karpathy/tinyllamas/resolve/main"
LLAMA2C = "https://github.com/karpathy/llama2.c/raw/master"


@dataclass(frozen=True)
class Published:
    name: str                   # the file name, as llama2.c's README and scripts use it
    url: str
    sha256: str | None = None   # None: not published; the shape check stands in
    shape: Config | None = None  # checkpoints: the header the file must carry
    what: str = ""

    @property
    def size(self) -> int | None:
        return self.shape.file_size() if self.shape else None


def _ckpt(dim, hidden, layers, heads, seq_len, vocab=32000, kv=None) -> Config:
    return Config(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads, n_kv_heads=kv or heads,
                  vocab_size=vocab, seq_len=seq_len)


PUBLISHED = {p.name: p for p in (
    Published("stories260K.bin", f"{HF}/stories260K/stories260K.bin",
              "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696",
              _ckpt(64, 172, 5, 8, 512, vocab=512, kv=4), "the default model (shipped in models/)"),
    Published("tok512.bin", f"{HF}/stories260K/tok512.bin",
              "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312",
              what="stories260K's 512-entry tokenizer (shipped in models/)"),
    Published("stories15M.bin", f"{HF}/stories15M.bin",
              "cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a",
              _ckpt(288, 768, 6, 6, 256), "dim 288, 6 layers, seq_len 256"),
    Published("stories42M.bin", f"{HF}/stories42M.bin", None,
              _ckpt(512, 1376, 8, 8, 1024), "dim 512, 8 layers, seq_len 1024"),
    Published("stories110M.bin", f"{HF}/stories110M.bin", None,
              _ckpt(768, 2048, 12, 12, 1024), "dim 768, 12 layers, seq_len 1024"),
    Published("tokenizer.bin", f"{LLAMA2C}/tokenizer.bin",
              "50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361",
              what="llama2.c's 32000-entry tokenizer"),
)}


def lookup(name: str) -> Published:
    """NAME as `fetch-model` takes it: `stories15M`, `stories15M.bin` or `tokenizer.bin`."""
    key = name if name in PUBLISHED else f"{name}.bin"
    if key not in PUBLISHED:
        raise MagmaLlamaError(f"unknown model {name!r}; known: {', '.join(sorted(PUBLISHED))} "
                              "(another file: give --url and --sha256)")
    return PUBLISHED[key]


# --- checking a file ------------------------------------------------------------------------
_verified: dict[tuple, str] = {}     # (realpath, size, mtime) -> name: a run hashes a file once


def problem(pub: Published, path: str | os.PathLike) -> str | None:
    """Why `path` does not hold `pub`'s bytes (or, with no checksum, its shape); None if it does."""
    if pub.sha256:
        got = file_sha256(path).hex()
        if got != pub.sha256:
            return f"SHA-256 {got[:16]}... is not the published {pub.name}'s ({pub.sha256[:16]}...)"
        return None
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
    if len(head) < HEADER.size or HEADER.unpack(head) != pub.shape.header_ints() or size != pub.size:
        return (f"{size} bytes, not the published {pub.name}'s {pub.size} bytes with the header "
                f"{pub.shape.header_ints()}")
    return None


def verify(path: str | os.PathLike) -> None:
    """On load: a file named as a published one must be that file.  Other names pass unchecked."""
    pub = PUBLISHED.get(os.path.basename(path))
    if pub is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        return      # the reader reports the missing or unreadable file in its own words
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        why = problem(pub, path)
        if why:
            raise ChecksumError(f"{path}: {why}; fetch it again (`magma-llama fetch-model {pub.name}`) "
                                "or give your own file another name")
        _verified[key] = pub.name


# --- downloading ----------------------------------------------------------------------------
def fetch(pub: Published, folder: Path, url: str | None = None, timeout: float = 30.0) -> Path:
    """Download `pub` into `folder` (resuming a `.part` left by an interrupted run), check it and
    give it its final name.  A file already there and whole is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / pub.name
    if final.exists() and problem(pub, final) is None:
        return final    # a damaged copy is downloaded again over
    part = folder / (pub.name + ".part")
    url = url or pub.url
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "magma-llama"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:      # the .part is already the whole file (or longer): check it
            return _finish(pub, part, final)
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url} ({reason}); offline? copy {pub.name} into {folder} "
                            "by hand, or retry when online (the download resumes)") from None
    with resp:
        resumed = resp.status == 206
        if not resumed:
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else pub.size
        bar = Bar(pub.name, total)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                done = have
                while block := resp.read(1 << 16):
                    out.write(block)
                    done += len(block)
                    bar.update(done)
                bar.update(done, force=True)
        except (OSError, urllib.error.URLError) as e:
            raise DownloadError(f"{url}: download broke off after {done} bytes ({e}); "
                                "run the command again to resume") from None
        finally:
            bar.close()
    return _finish(pub, part, final)


def _finish(pub: Published, part: Path, final: Path) -> Path:
    why = problem(pub, part)
    if why:
        part.unlink()
        raise DownloadError(f"download of {pub.name} refused: {why}; removed it, run again to retry")
    os.replace(part, final)
    return final
