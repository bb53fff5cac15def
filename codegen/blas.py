"""The BLAS thread count for runs of matrix products.

Waking BLAS worker threads costs more than small products gain from them, and on a 2-core VM it
costs more than any product gains (measured with numpy's OpenBLAS, 1 vs 2 threads: 128x784x512
0.70 vs 23 ms, 512^3 1.7 vs 22 ms, 1024^3 13.5 vs 26 ms, 2048^3 94 vs 108 ms; a 64-128-64-10 MLP
train step 0.3 vs 10.5 ms). So an executable whose products are all below `single_thread_limit()`
sets BLAS to one thread, and one with a larger product sets it back to the process's default. Switching is not free (re-growing OpenBLAS's pool costs ~30 us), so the setting
is changed only when it differs and stays between runs: a program that mixes fuseflow's small
products with its own large numpy products shares the last setting fuseflow made.
threadpoolctl finds and drives the BLAS that numpy loaded, whichever vendor it is.
"""

from __future__ import annotations

import os

SMALL_PRODUCT_FLOPS = 1 << 24  # 2*m*n*k below this, one thread wins on any machine


def single_thread_limit() -> int:
    """Products (in flops) below this run on one BLAS thread: all of them on machines of <= 2 cores."""
    return 1 << 62 if (os.cpu_count() or 1) <= 2 else SMALL_PRODUCT_FLOPS


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

    @property
    def single(self) -> bool:
        """Whether fuseflow set BLAS to one thread (then large products split across our workers)."""
        return self._single

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
