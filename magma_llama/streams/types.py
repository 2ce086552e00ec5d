"""The stream type: one ready/valid bundle for every stage boundary.

A beat moves on the rising clock edge where `valid` and `ready` are both high.
The payload is any Magma type; packets carry their `last` flag *inside* the
payload (`Packet[T]`), so every block moves packets unchanged without knowing
about them.  The full rule is in docs/streams.md.
"""

from __future__ import annotations

import functools

import magma as m

from magma_llama.streams._base import tag


def Stream(T):
    """Undirected stream of payload T (magma's ReadyValid: valid, ready, data)."""
    return m.ReadyValid[T]


def StreamIn(T):
    """A port that receives beats: valid/data come in, ready goes out."""
    return m.Consumer(m.ReadyValid[T])


def StreamOut(T):
    """A port that sends beats: valid/data go out, ready comes in."""
    return m.Producer(m.ReadyValid[T])


@functools.lru_cache(maxsize=None)
def Packet(T):
    """Payload T plus `last`, set on the final beat of a packet."""
    name = f"Packet_{tag(T)}"
    return m.Product.from_fields(name, {"data": T, "last": m.Bit})


@functools.lru_cache(maxsize=None)
def Routed(T, n: int):
    """Payload T plus `sel`, the index of the output a demux sends it to."""
    name = f"Routed_{tag(T)}_{n}"
    return m.Product.from_fields(name, {"sel": m.UInt[clog2(n)], "data": T})


def payload_type(port):
    """The undirected payload type of a stream port (definition or instance side)."""
    return type(port).undirected_data_t


def clog2(n: int) -> int:
    """Bits to index n things; at least 1 so every select signal has a width."""
    return max(1, (n - 1).bit_length())


def width(T) -> int:
    """Number of bits of payload T."""
    return T.flat_length() if hasattr(T, "flat_length") else m.bitwidth(T)
