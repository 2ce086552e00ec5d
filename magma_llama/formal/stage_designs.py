"""Rows of the design table for the datapath stages (see designs.py)."""

from __future__ import annotations

import functools

from magma_llama.formal.designs import Design, register
from magma_llama.stages import kv_cache, matvec

# proofs: 4 rows x 2 words x 8 bits; emission: 16 positions x 8 words of one Q12.20 activation
KV_PROVED = (4, 2, 8)
KV_EMITTED = (16, 8, 32)


def _kv_formal(mutant=None):
    return kv_cache.KvCache(*KV_PROVED, mutant=mutant, formal=True)


register(Design("kv_cache", "KV cache memory, 4x2x8 (proof) / 16x8x32 (emit), read-during-write bypass",
                emit=functools.partial(kv_cache.KvCache, *KV_EMITTED),
                formal=_kv_formal, mutants=tuple(kv_cache.MUTANTS), depth=4))


# MatVec engine, emit only: 4 lanes of w16, 18 columns (a padded last beat), 3 rows
MATVEC_EMITTED = (4, 16, 18, 3)
register(Design("matvec", "MatVec engine, L=4 w16, 3 rows of 18 cols (emit only)",
                emit=functools.partial(matvec.MatVec, *MATVEC_EMITTED)))
