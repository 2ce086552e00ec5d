"""llama2.c's tokenizer.bin and its BPE, byte for byte as run.c does it.

File: int32 max_token_length, then per token: float32 score, int32 length, bytes.
The file does not store the vocabulary size, so we count the entries and insist
they equal the model's vocab_size.
"""

from __future__ import annotations

import re
import struct

import numpy as np

from magma_llama.errors import TokenizerError, TokenRangeError, VocabMismatchError
from magma_llama.io.files import read_bytes

BOS, EOS = 1, 2
_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{1,2})")


class Tokenizer:
    def __init__(self, pieces: list[bytes], scores: list[float], max_token_length: int):
        self.pieces = pieces
        self.scores = np.asarray(scores, dtype=np.float32)
        self.max_token_length = max_token_length
        self.vocab_size = len(pieces)
        self._lookup = _bsearch_table(pieces)

    # --- run.c: encode -----------------------------------------------------------
    def encode(self, text: bytes, bos: bool = True, eos: bool = False) -> list[int]:
        """BPE-encode UTF-8 bytes exactly as run.c's encode()."""
        if isinstance(text, str):
            text = text.encode("utf-8")
        if b"\0" in text:
            raise TokenizerError("prompt contains a NUL byte")
        tokens: list[int] = [BOS] if bos else []
        if text:
            tokens.append(self._lookup.get(b" ", -1))  # dummy prefix, as sentencepiece
        buf = bytearray()
        n = len(text)
        for i, c in enumerate(text):
            if (c & 0xC0) != 0x80:
                buf.clear()
            buf.append(c)
            nxt = text[i + 1] if i + 1 < n else 0
            if (nxt & 0xC0) == 0x80 and len(buf) < 4:
                continue
            tid = self._lookup.get(bytes(buf), -1)
            if tid != -1:
                tokens.append(tid)
            else:
                tokens.extend(b + 3 for b in buf)  # byte fallback: <0x00> is id 3
            buf.clear()
        self._merge(tokens, first=1 if bos else 0)
        if eos:
            tokens.append(EOS)
        bad = [t for t in tokens if not 0 <= t < self.vocab_size]
        if bad:
            raise TokenRangeError(
                f"prompt needs token id {bad[0]} (byte fallback or missing ' ' piece) "
                f"but the vocabulary has {self.vocab_size} entries")
        return tokens

    def _merge(self, tokens: list[int], first: int) -> None:
        """Greedily merge the best-scoring adjacent pair until none is in the vocab."""
        pieces, scores, lookup = self.pieces, self.scores, self._lookup
        while True:
            best_score, best_id, best_idx = np.float32(-1e10), -1, -1
            for i in range(len(tokens) - 1):
                a, b = tokens[i], tokens[i + 1]
                if a < 0 or b < 0 or a >= self.vocab_size or b >= self.vocab_size:
                    continue
                tid = lookup.get(pieces[a] + pieces[b], -1)
                if tid != -1 and scores[tid] > best_score:
                    best_score, best_id, best_idx = scores[tid], tid, i
            if best_idx == -1:
                return
            tokens[best_idx:best_idx + 2] = [best_id]

    # --- run.c: decode + safe_printf ------------------------------------------------
    def decode(self, prev: int, token: int) -> bytes:
        """The bytes run.c's decode() returns for `token` following `prev`."""
        self.check_id(token)
        piece = self.pieces[token]
        if prev == BOS and piece[:1] == b" ":
            piece = piece[1:]
        m = _BYTE_PIECE.match(piece)
        if m:
            return bytes([int(m.group(1), 16)])
        return piece

    def printable(self, prev: int, token: int) -> bytes:
        """What run.c's safe_printf prints: lone non-printable bytes are dropped."""
        piece = self.decode(prev, token)
        piece = piece.split(b"\0", 1)[0]  # printf("%s") stops at NUL
        if not piece:
            return b""
        if len(piece) == 1 and not (0x20 <= piece[0] < 0x7F or piece[0] in b" \t\n\v\f\r"):
            return b""
        return piece

    def check_id(self, token: int) -> None:
        if not 0 <= token < self.vocab_size:
            raise TokenRangeError(f"token id {token} out of range [0, {self.vocab_size})")


def _bsearch_table(pieces: list[bytes]) -> dict[bytes, int]:
    """str -> id as run.c's bsearch over the qsort-ed vocab finds it (duplicates included)."""
    table: dict[bytes, int] = {}
    dup = set()
    for i, p in enumerate(pieces):
        key = p.split(b"\0", 1)[0]
        if key in table:
            dup.add(key)
        else:
            table[key] = i
    if dup:
        # glibc's qsort is a stable merge sort; bsearch halves [l, u) until it hits a match
        order = sorted(range(len(pieces)), key=lambda i: pieces[i].split(b"\0", 1)[0])
        keys = [pieces[i].split(b"\0", 1)[0] for i in order]
        for key in dup:
            lo, hi = 0, len(keys)
            while lo < hi:
                mid = (lo + hi) // 2
                if key < keys[mid]:
                    hi = mid
                elif key > keys[mid]:
                    lo = mid + 1
                else:
                    table[key] = order[mid]
                    break
    return table


def read_tokenizer(path: str, vocab_size: int | None = None) -> Tokenizer:
    """Read tokenizer.bin; with vocab_size, insist the file holds exactly that many entries."""
    from magma_llama.io.catalog import verify
    data = read_bytes(path, "tokenizer", TokenizerError)
    verify(path)
    if len(data) < 4:
        raise TokenizerError(f"{path}: too short to be a tokenizer.bin")
    (max_len,) = struct.unpack_from("<i", data, 0)
    if max_len <= 0:
        raise TokenizerError(f"{path}: max_token_length {max_len} must be positive")
    pieces, scores, at = [], [], 4
    while at < len(data):
        if at + 8 > len(data):
            raise TokenizerError(f"{path}: truncated in entry {len(pieces)}")
        score, n = struct.unpack_from("<fi", data, at)
        at += 8
        if n < 0 or at + n > len(data):
            raise TokenizerError(f"{path}: entry {len(pieces)} has a bad length {n}")
        pieces.append(data[at:at + n])
        scores.append(score)
        at += n
    if vocab_size is not None and len(pieces) != vocab_size:
        raise VocabMismatchError(
            f"{path}: tokenizer has {len(pieces)} entries but the model's vocab_size is {vocab_size}")
    if len(pieces) < 3:
        raise TokenizerError(f"{path}: only {len(pieces)} entries; <unk>, <s>, </s> are required")
    return Tokenizer(pieces, scores, max_len)


def write_tokenizer(path: str, pieces: list[bytes], scores: list[float]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<i", max(len(p) for p in pieces)))
        for p, s in zip(pieces, scores):
            f.write(struct.pack("<fi", s, len(p)))
            f.write(p)
