"""The BLAS thread count for runs of matrix products.

Waking BLAS worker threads costs more than small products gain from them: an executable whose
products are all below `SMALL_PRODUCT_FLOPS` sets BLAS to one thread, and one with a larger
product sets it back to the process's default (measured with numpy's OpenBLAS on a quiet 2-core
VM, 1 vs 2 threads: 128x784x512 0.64 vs 0.35 ms, 512^3 1.40 vs 0.80 ms, 128x512x10 15 vs 16 us).
An earlier measurement that made 2 threads 30x slower was taken while numba's OpenMP workers
spun on the same cores; fuseflow's kernels no longer use OpenMP. On a loaded machine BLAS threads
still wait for busy cores. Switching is not free (re-growing OpenBLAS's pool costs ~30 us), so
the setting is changed only when it differs and stays between runs: a program that mixes
fuseflow's small products with its own large numpy products shares the last setting fuseflow
made. threadpoolctl finds and drives the BLAS that numpy loaded, whichever vendor it is.
"""

from __future__ import annotations

import ctypes

SMALL_PRODUCT_FLOPS = 1 << 24  # 2*m*n*k below this, one thread wins on any machine


def single_thread_limit() -> int:
    """Products (in flops) below this run on one BLAS thread."""
    return SMALL_PRODUCT_FLOPS


class _Blas:
    def __init__(self) -> None:
        self._controllers = None
        self._defaults: list = []
        self._single = False

    def _load(self) -> list:
        if self._controllers is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # without it, BLAS keeps its own threading
                self._controllers = []
            else:
                self._controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
            self._defaults = [c.num_threads for c in self._controllers]
        return self._controllers

    def use(self, single: bool) -> None:
        """One BLAS thread (`single`) or the process's default; a no-op when already so."""
        if single == self._single:
            return
        for c, n in zip(self._load(), self._defaults):
            c.set_num_threads(1 if single else n)
        self._single = single


BLAS = _Blas()


def product_flops(op) -> int:
    """2*m*n*k (times the batch) of a matmul op."""
    a = op.operands[0].type.shape
    flops = 2 * (a[-2] if op.attrs["transpose_a"] else a[-1])
    for d in op.results[0].type.shape:
        flops *= d
    return flops


# cblas gemm symbols, as numpy's own BLAS may name them: numpy's wheels carry OpenBLAS with 64-bit
# integers and prefixed names; other builds link a plain cblas (32-bit integers).
_GEMM_SYMBOLS = {"s": [("scipy_cblas_sgemm64_", ctypes.c_int64), ("cblas_sgemm64_", ctypes.c_int64),
                       ("cblas_sgemm", ctypes.c_int)],
                 "d": [("scipy_cblas_dgemm64_", ctypes.c_int64), ("cblas_dgemm64_", ctypes.c_int64),
                       ("cblas_dgemm", ctypes.c_int)]}
_gemms: dict = {}


def gemm(kind: str):
    """numpy's BLAS ``cblas_?gemm`` for `kind` "s" (float32) or "d" (float64) as a ctypes
    function, or None when it cannot be found. The one numpy loaded: a second BLAS would bring a
    second thread pool, and the two fight over the cores."""
    if kind not in _gemms:
        _gemms[kind] = _find_gemm(kind)
    return _gemms[kind]


def _find_gemm(kind: str):
    for controller in BLAS._load():
        try:
            lib = ctypes.CDLL(controller.filepath)
        except OSError:
            continue
        for name, integer in _GEMM_SYMBOLS[kind]:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            real = ctypes.c_float if kind == "s" else ctypes.c_double
            i, p = integer, ctypes.c_void_p
            fn.argtypes = [i, i, i, i, i, i, real, p, i, p, i, real, p, i]
            fn.restype = None
            return fn
    return None
