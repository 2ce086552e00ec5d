"""The weight image: the hardware's weight memory, as a small versioned file.

Layout and fields are documented in docs/weight_image.md.  Sections come in the
order the decoder streams them (per layer: rms_att, wq, wk, wv, wo, rms_ffn, w1,
w3, w2; then rms_final, wcls; then the embedding when it is not the classifier).
Each section is a block of mantissas (row-major, little-endian two's complement,
bits/8 bytes each) followed by a block of exponents (int8, one per group, row-major),
every block aligned to 64 bytes.  A CRC32 covers the header, the section table and
the payload; a SHA-256 of the source checkpoint ties the image to it.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from magma_llama.errors import CheckpointError, MagmaLlamaError
from magma_llama.io.checkpoint import Checkpoint, Config
from magma_llama.io.files import file_sha256, read_bytes
from magma_llama.numerics.fixed import I64
from magma_llama.numerics.weights import (
    EXP_BITS, EXP_MAX, EXP_MIN, EXPONENT_RULES, GAIN_BITS, QUANTIZER_VERSION, WEIGHT_FORMATS, QuantMatrix,
    WeightFormat, check_accumulator_bound, check_config_limits, check_gain_bound, quantize_matrix,
)

MAGIC = b"MLWI"
VERSION = 1
ALIGN = 64
HEADER = struct.Struct("<4sHH7iIBBBBHbbII QQI32s16s I".replace(" ", ""))
SECTION = struct.Struct("<24sBBHIIIQQII")
HEADER_SIZE = 128
assert HEADER.size == HEADER_SIZE, HEADER.size
assert SECTION.size == 64, SECTION.size
KIND_MATRIX, KIND_GAIN = 0, 1


class WeightImageError(MagmaLlamaError):
    """A weight image that cannot be used."""


class WeightImageCorruptError(WeightImageError):
    """Bad magic, version, CRC, size or field: the file is damaged or not an image."""


class WeightImageMismatchError(WeightImageError):
    """A sound image made for another checkpoint or another weight format."""


@dataclass
class Section:
    name: str
    kind: int
    q: QuantMatrix


@dataclass
class WeightImage:
    config: Config
    fmt: WeightFormat
    checkpoint_sha256: bytes
    sections: dict[str, Section] = field(default_factory=dict)

    def matrix(self, name: str) -> QuantMatrix:
        return self.sections[name].q

    @property
    def embedding_section(self) -> str:
        return "wcls" if self.config.shared_classifier else "embedding"


def section_layout(cfg: Config) -> list[tuple[str, int, int, int]]:
    """(name, kind, rows, cols) in stream order: the order the decoder reads them."""
    d, h, kv, v = cfg.dim, cfg.hidden_dim, cfg.kv_dim, cfg.vocab_size
    out = []
    for l in range(cfg.n_layers):
        out += [(f"layer{l}.rms_att", KIND_GAIN, 1, d), (f"layer{l}.wq", KIND_MATRIX, d, d),
                (f"layer{l}.wk", KIND_MATRIX, kv, d), (f"layer{l}.wv", KIND_MATRIX, kv, d),
                (f"layer{l}.wo", KIND_MATRIX, d, d), (f"layer{l}.rms_ffn", KIND_GAIN, 1, d),
                (f"layer{l}.w1", KIND_MATRIX, h, d), (f"layer{l}.w3", KIND_MATRIX, h, d),
                (f"layer{l}.w2", KIND_MATRIX, d, h)]
    out += [("rms_final", KIND_GAIN, 1, d), ("wcls", KIND_MATRIX, v, d)]
    if not cfg.shared_classifier:
        out.append(("embedding", KIND_MATRIX, v, d))
    return out


def _source_tensor(ckpt: Checkpoint, name: str) -> np.ndarray:
    w = ckpt.weights
    if "." in name:
        layer, t = name.split(".")
        return getattr(w, t)[int(layer[5:])]
    return {"rms_final": w.rms_final, "wcls": w.wcls, "embedding": w.token_embedding}[name]


def quantize_checkpoint(ckpt: Checkpoint, fmt: WeightFormat, sha256: bytes | None = None) -> WeightImage:
    """The weight image of a float checkpoint (deterministic: same input, same bytes)."""
    if sha256 is None:
        sha256 = file_sha256(ckpt.path) if ckpt.path else bytes(32)
    check_config_limits(ckpt.config)
    img = WeightImage(ckpt.config, fmt, sha256)
    for name, kind, rows, cols in section_layout(ckpt.config):
        bits = GAIN_BITS if kind == KIND_GAIN else fmt.bits
        q = quantize_matrix(_source_tensor(ckpt, name).reshape(rows, cols), bits, fmt.group, fmt.rule)
        if kind == KIND_MATRIX and (bad := check_accumulator_bound(q)) is not None:
            raise CheckpointError(f"{name}: row {bad} has weights too large for the 64-bit accumulator "
                                  f"in format {fmt.name}")
        if kind == KIND_GAIN and (bad := check_gain_bound(q)) is not None:
            raise CheckpointError(f"{name}: gain {bad} is too large for the RMSNorm datapath")
        img.sections[name] = Section(name, kind, q)
    return img


# --- writing -------------------------------------------------------------------------------------
def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _mant_bytes(mant: np.ndarray, nbytes: int) -> bytes:
    u = (mant.astype("<i8").ravel() & ((1 << (8 * nbytes)) - 1)).astype("<u4")
    return u.view(np.uint8).reshape(-1, 4)[:, :nbytes].tobytes()


def _mant_from_bytes(raw: bytes, nbytes: int, count: int) -> np.ndarray:
    b = np.frombuffer(raw, np.uint8, count * nbytes).reshape(count, nbytes).astype(I64)
    v = np.zeros(count, I64)
    for i in range(nbytes):
        v |= b[:, i] << I64(8 * i)
    sign = I64(1) << I64(8 * nbytes - 1)
    return (v ^ sign) - sign


def to_bytes(img: WeightImage) -> bytes:
    cfg, fmt = img.config, img.fmt
    layout = section_layout(cfg)
    table_size = len(layout) * SECTION.size
    offset = _align(HEADER_SIZE + table_size)
    payload_offset = offset
    entries, blocks = [], []
    for name, kind, rows, cols in layout:
        q = img.sections[name].q
        nbytes = (GAIN_BITS if kind == KIND_GAIN else fmt.bits) // 8
        m = _mant_bytes(q.mant, nbytes)
        e = q.exp.astype(np.int8).tobytes()
        mant_off = offset
        exp_off = _align(mant_off + len(m))
        offset = _align(exp_off + len(e))
        entries.append(SECTION.pack(name.encode(), kind, nbytes, 0, rows, cols, q.group, mant_off, exp_off,
                                    q.exp.shape[1], 0))
        blocks.append((mant_off, m))
        blocks.append((exp_off, e))
    payload = bytearray(offset - payload_offset)
    for at, data in blocks:
        payload[at - payload_offset: at - payload_offset + len(data)] = data
    table = b"".join(entries)
    flags = 1 if cfg.shared_classifier else 0
    fields = (MAGIC, VERSION, HEADER_SIZE, cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads,
              cfg.n_kv_heads, cfg.vocab_size, cfg.seq_len, flags, fmt.bits, GAIN_BITS, EXP_BITS,
              EXPONENT_RULES.index(fmt.rule), fmt.group, EXP_MIN, EXP_MAX, len(layout), zlib.crc32(table),
              payload_offset, len(payload), zlib.crc32(payload), img.checkpoint_sha256, bytes(16), 0)
    head = HEADER.pack(*fields)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    pad = bytes(payload_offset - HEADER_SIZE - table_size)
    return head + table + pad + bytes(payload)


def write_image(img: WeightImage, path: str) -> None:
    """Write atomically (a reader never sees half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(to_bytes(img))
    os.replace(tmp, path)


# --- reading -------------------------------------------------------------------------------------
def read_image(path: str) -> WeightImage:
    """Read and fully validate an image; any defect is a WeightImageCorruptError."""
    data = read_bytes(path, "weight image", WeightImageError)
    return from_bytes(data, path)


def from_bytes(data: bytes, path: str = "<bytes>") -> WeightImage:
    def bad(msg: str) -> WeightImageCorruptError:
        return WeightImageCorruptError(f"{path}: {msg}")

    if len(data) < HEADER_SIZE:
        raise bad(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
    if data[:4] != MAGIC:
        raise bad(f"not a weight image (magic {data[:4]!r}, want {MAGIC!r})")
    h = HEADER.unpack(data[:HEADER_SIZE])
    (_, version, hsize, dim, hidden, layers, heads, kv_heads, vocab, seq_len, flags, wbits, gbits, ebits,
     rule, group, emin, emax, nsec, table_crc, poff, psize, pcrc, sha, _, hcrc) = h
    if version != VERSION:
        raise bad(f"image version {version}, this program reads version {VERSION}; rebuild the image")
    if zlib.crc32(data[:HEADER_SIZE - 4]) != hcrc:
        raise bad("header CRC mismatch (damaged file)")
    if hsize != HEADER_SIZE:
        raise bad(f"header size {hsize}, want {HEADER_SIZE}")
    try:
        cfg = Config(dim, hidden, layers, heads, kv_heads, vocab, seq_len,
                     shared_classifier=bool(flags & 1)).validate()
        check_config_limits(cfg)
    except CheckpointError as e:
        raise bad(f"config: {e}") from None
    if wbits not in WEIGHT_FORMATS.values() or gbits != GAIN_BITS or ebits != EXP_BITS:
        raise bad(f"unsupported formats: weight bits {wbits}, gain bits {gbits}, exponent bits {ebits}")
    if not 1 <= group <= 4096 or rule >= len(EXPONENT_RULES) or (emin, emax) != (EXP_MIN, EXP_MAX):
        raise bad(f"bad group size {group}, exponent rule {rule} or exponent range [{emin}, {emax}]")
    fmt = WeightFormat(wbits, group, EXPONENT_RULES[rule])
    layout = section_layout(cfg)
    if nsec != len(layout):
        raise bad(f"{nsec} sections, the config needs {len(layout)}")
    table_end = HEADER_SIZE + nsec * SECTION.size
    if len(data) < table_end:
        raise bad("truncated section table")
    table = data[HEADER_SIZE:table_end]
    if zlib.crc32(table) != table_crc:
        raise bad("section table CRC mismatch (damaged file)")
    if len(data) != poff + psize:
        raise bad(f"{len(data)} bytes, the header says {poff + psize} (truncated or padded)")
    if zlib.crc32(data[poff:poff + psize]) != pcrc:
        raise bad("payload CRC mismatch (damaged file)")
    img = WeightImage(cfg, fmt, sha)
    for i, (name, kind, rows, cols) in enumerate(layout):
        (sname, skind, nbytes, _, srows, scols, sgroup, moff, eoff, ng, _) = SECTION.unpack_from(
            table, i * SECTION.size)
        sname = sname.rstrip(b"\0").decode("ascii", "replace")
        want_bytes = (GAIN_BITS if kind == KIND_GAIN else wbits) // 8
        if (sname, skind, srows, scols, sgroup, nbytes, ng) != (name, kind, rows, cols, group, want_bytes,
                                                               -(-cols // group)):
            raise bad(f"section {i} is {sname!r} {srows}x{scols}, the config needs {name!r} {rows}x{cols}")
        msize, esize = rows * cols * nbytes, rows * ng
        if not (poff <= moff and moff + msize <= len(data) and poff <= eoff and eoff + esize <= len(data)):
            raise bad(f"section {name}: blocks outside the file")
        mant = _mant_from_bytes(data[moff:moff + msize], nbytes, rows * cols).reshape(rows, cols)
        exp = np.frombuffer(data, np.int8, esize, eoff).astype(I64).reshape(rows, ng)
        if exp.min() < EXP_MIN or exp.max() > EXP_MAX:
            raise bad(f"section {name}: exponent outside [{EXP_MIN}, {EXP_MAX}]")
        mmax = (1 << (8 * nbytes - 1)) - 1
        if np.abs(mant).max() > mmax:
            raise bad(f"section {name}: mantissa -2^{8 * nbytes - 1} is not allowed")
        q = QuantMatrix(mant, exp, group)
        if kind == KIND_MATRIX and check_accumulator_bound(q) is not None:
            raise bad(f"section {name}: weights could overflow the accumulator")
        if kind == KIND_GAIN and check_gain_bound(q) is not None:
            raise bad(f"section {name}: a gain could overflow the RMSNorm datapath")
        img.sections[name] = Section(name, kind, q)
    return img


def check_matches(img: WeightImage, ckpt: Checkpoint, fmt: WeightFormat, sha256: bytes, path: str) -> None:
    """Refuse an image made from another checkpoint or in another format."""
    if img.config != ckpt.config:
        raise WeightImageMismatchError(f"{path}: made for config {img.config.header_ints()}, "
                                       f"the model is {ckpt.config.header_ints()}")
    if img.checkpoint_sha256 != sha256:
        raise WeightImageMismatchError(f"{path}: made from a different checkpoint than {ckpt.path}")
    if (img.fmt.bits, img.fmt.group) != (fmt.bits, fmt.group):
        raise WeightImageMismatchError(f"{path}: format {img.fmt.name} group {img.fmt.group}, "
                                       f"asked for {fmt.name} group {fmt.group}")


def cached_image_path(ckpt_path: str, fmt: WeightFormat, sha256: bytes) -> str:
    from magma_llama import paths
    stem = os.path.splitext(os.path.basename(ckpt_path))[0]
    name = f"{stem}-{sha256.hex()[:12]}-{fmt.name}-g{fmt.group}-{fmt.rule}-q{QUANTIZER_VERSION}.mlwi"
    return str(paths.build_dir() / "weights" / name)


def load_or_build(ckpt: Checkpoint, fmt: WeightFormat, image_path: str | None = None) -> tuple[WeightImage, str]:
    """The image for ckpt in fmt: `image_path` if given (must match), else build/weights/ (made if absent)."""
    sha = file_sha256(ckpt.path)
    path = image_path or cached_image_path(ckpt.path, fmt, sha)
    if image_path is None and not os.path.exists(path):
        write_image(quantize_checkpoint(ckpt, fmt, sha), path)
    try:
        img = read_image(path)
    except WeightImageCorruptError as e:
        if image_path is None:   # our own cache: say how to get a good one
            raise WeightImageCorruptError(f"{e} (a cached image: delete it to rebuild)") from None
        raise
    check_matches(img, ckpt, fmt, sha, path)
    if image_path is None and img.fmt.rule != fmt.rule:
        raise WeightImageMismatchError(f"{path}: exponent rule {img.fmt.rule}, asked for {fmt.rule}")
    return img, path
