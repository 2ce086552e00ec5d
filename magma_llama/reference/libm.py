"""The C library's single-precision functions, called directly.

run.c calls expf, powf, cosf and sinf from libm.  numpy's float32 versions round
differently in the last bit for a large share of inputs, and even float64-then-round
disagrees with glibc's expf for about 1 input in 2000.  Calling the very same libm
functions makes the reference bit-identical to run.c on the machine it runs on.
"""

import ctypes
import ctypes.util

import numpy as np

_libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")


def _f1(name):
    fn = getattr(_libm, name)
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


_expf, _cosf, _sinf = _f1("expf"), _f1("cosf"), _f1("sinf")
_powf = _libm.powf
_powf.restype = ctypes.c_float
_powf.argtypes = [ctypes.c_float, ctypes.c_float]


def _vectorize(fn):
    def apply(x):
        x = np.asarray(x, dtype=np.float32)
        return np.fromiter((fn(v) for v in x.ravel().tolist()), dtype=np.float32,
                           count=x.size).reshape(x.shape)
    apply.__name__ = fn.__name__
    return apply


expf = _vectorize(_expf)
cosf = _vectorize(_cosf)
sinf = _vectorize(_sinf)


def powf(a: float, b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float32)
    return np.fromiter((_powf(a, v) for v in b.ravel().tolist()), dtype=np.float32,
                       count=b.size).reshape(b.shape)
