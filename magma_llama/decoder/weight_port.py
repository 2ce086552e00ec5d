"""The weight port: how the decoder sees the weight image, beat by beat.

Weights live outside the decoder, as DRAM would hold them.  The decoder asks for a
burst with a request beat {addr, len} (addresses count port words, not bytes) and
receives `len` port words, in order, on a data stream.  A port word is one MatVec
weight beat of `lanes` lanes: `lanes` mantissas of the weight format's `bits`, then
`lanes` group exponents of EXP_BITS, the first lane in the low bits (the packing of
stages.matvec.WeightBeat).  Every matrix row starts on a new word, so row r of a
section is at base + r * ceil(cols / lanes) and one row (an embedding lookup) is one
burst.  RMSNorm gains (GAIN_BITS mantissas) use the same words differently: each word
holds `gains_per_word` entries of {mant: GAIN_BITS, exp: EXP_BITS}, the gains of one
RMSNorm output beat (RMSNorm has that many lanes, so it takes a word a cycle).

`PortLayout` is the one place this layout is defined: the memory model writes the
image with it, the decoder's address generator reads its base addresses (constants
at elaboration), and the tests check both against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from magma_llama.errors import UsageError
from magma_llama.io.checkpoint import Config
from magma_llama.numerics.image import KIND_GAIN, WeightImage, section_layout
from magma_llama.numerics.weights import EXP_BITS, GAIN_BITS, WEIGHT_FORMATS, weight_beats

GAIN_ENTRY_BITS = GAIN_BITS + EXP_BITS
ADDR_BITS = 32
LEN_BITS = 16            # a request's length; the decoder splits a section into bursts of top.MAX_BURST


class UnsupportedHardwareError(UsageError):
    """Lanes or weight format that this config cannot use."""


@dataclass(frozen=True)
class Section:
    name: str
    kind: int
    rows: int
    cols: int
    base: int            # first port word
    words_per_row: int

    @property
    def words(self) -> int:
        return self.rows * self.words_per_row


@dataclass(frozen=True)
class PortLayout:
    cfg: Config
    lanes: int
    bits: int

    def __post_init__(self):
        if self.bits not in WEIGHT_FORMATS.values():
            raise UnsupportedHardwareError(f"weight format w{self.bits} is not one of "
                                           f"{', '.join(WEIGHT_FORMATS)}")
        if self.lanes not in (1, 2, 4, 8, 16, 32, 64):
            raise UnsupportedHardwareError(f"--lanes must be a power of two from 1 to 64, got {self.lanes}")
        if self.word_bits < GAIN_ENTRY_BITS:
            raise UnsupportedHardwareError(
                f"--lanes {self.lanes} with w{self.bits} gives {self.word_bits}-bit port words, too narrow "
                f"for one {GAIN_ENTRY_BITS}-bit RMSNorm gain; use more lanes")
        if self.total_words >= 1 << ADDR_BITS:
            raise UnsupportedHardwareError(f"the weight image is {self.total_words} port words, more than "
                                           f"{ADDR_BITS}-bit word addresses reach")

    @property
    def word_bits(self) -> int:
        return self.lanes * (self.bits + EXP_BITS)

    @property
    def gains_per_word(self) -> int:
        """RMSNorm's lanes, and so the gains a word holds: the largest power of two that fits
        a word, is at most `lanes` (MatVec's wide vector port fills a lane group) and divides
        dim (every output beat is whole)."""
        n = 1
        while 2 * n <= min(self.lanes, self.word_bits // GAIN_ENTRY_BITS) and self.cfg.dim % (2 * n) == 0:
            n *= 2
        return n

    def words_per_row(self, kind: int, cols: int) -> int:
        per = self.gains_per_word if kind == KIND_GAIN else self.lanes
        return -(-cols // per)

    @property
    def sections(self) -> dict[str, Section]:
        out, base = {}, 0
        for name, kind, rows, cols in section_layout(self.cfg):
            wpr = self.words_per_row(kind, cols)
            out[name] = Section(name, kind, rows, cols, base, wpr)
            base += rows * wpr
        return out

    @property
    def total_words(self) -> int:
        return sum(s.words for s in self.sections.values())

    @property
    def embedding(self) -> Section:
        return self.sections["wcls" if self.cfg.shared_classifier else "embedding"]

    # -- words ---------------------------------------------------------------------
    def pack_matrix_word(self, mant, exp) -> int:
        v, off = 0, 0
        for x in mant:
            v |= (int(x) & ((1 << self.bits) - 1)) << off
            off += self.bits
        for e in exp:
            v |= (int(e) & ((1 << EXP_BITS) - 1)) << off
            off += EXP_BITS
        return v

    def pack_gain_word(self, mant, exp) -> int:
        v = 0
        for j, (x, e) in enumerate(zip(mant, exp)):
            entry = (int(x) & ((1 << GAIN_BITS) - 1)) | ((int(e) & ((1 << EXP_BITS) - 1)) << GAIN_BITS)
            v |= entry << (j * GAIN_ENTRY_BITS)
        return v

    def words(self, image: WeightImage) -> list[int]:
        """Every port word of the image, address order."""
        if image.config != self.cfg:
            raise ValueError("weight image and port layout are for different configs")
        out: list[int] = []
        for s in self.sections.values():
            q = image.matrix(s.name)
            if s.kind == KIND_GAIN:
                k = self.gains_per_word
                mant, exp = q.mant[0], q.exp_per_weight()[0]
                for w in range(s.words_per_row):
                    out.append(self.pack_gain_word(mant[w * k:(w + 1) * k], exp[w * k:(w + 1) * k]))
            else:
                mant, exp = weight_beats(q, self.lanes)
                for mm, ee in zip(mant.reshape(-1, self.lanes), exp.reshape(-1, self.lanes)):
                    out.append(self.pack_matrix_word(mm, ee))
        assert len(out) == self.total_words
        return out

    def write_hex(self, image: WeightImage, path: str) -> None:
        """The image as a $readmemh file: one port word per line, hex."""
        digits = -(-self.word_bits // 4)
        with open(path, "w") as f:
            for w in self.words(image):
                f.write(f"{w:0{digits}x}\n")


def weight_bits_per_token(layout: PortLayout) -> int:
    """Port bits one token streams: every section but the embedding once, plus one embedding row."""
    words = sum(s.words for s in layout.sections.values() if s.name != "embedding")
    words += layout.embedding.words_per_row      # with a shared classifier, a second read of a wcls row
    return words * layout.word_bits


__all__ = ["PortLayout", "Section", "UnsupportedHardwareError", "ADDR_BITS", "LEN_BITS", "GAIN_ENTRY_BITS",
           "weight_bits_per_token"]
