"""The hardware's numbers, defined once: formats, rounding, LUTs, nonlinear functions.

Read by the golden model (`magma_llama.golden`) and by the Magma generators.
- `fixed`: activation format (Q12.20 in 32 bits), 64-bit accumulators, rounding
  (round half up by shift) and saturation primitives.
- `tables`: every constant and ROM table, built at elaboration time.
- `functions`: exp, reciprocal, rsqrt, sigmoid/SiLU, argmax, online softmax, in integers.
- `weights`: the w8/w16/w24 weight formats and the quantizer.
- `image`: the weight image file (the hardware's weight memory).
- `sampling`: the hardware sampler and its xorshift32 PRNG.
See docs/numerics.md.
"""
