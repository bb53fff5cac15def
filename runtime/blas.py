"""The BLAS thread count for runs of small matrix products.

On this class of machine (2 cores, a VM), waking OpenBLAS's worker threads costs far more than a
small product gains from them (measured: a 64-128-64-10 MLP train step takes 10.5 ms with
OpenBLAS's 2 threads and 0.3 ms with one; plain numpy suffers alike). So an executable whose
products are all small sets BLAS to one thread, and one with a large product sets it back to the
process's default. Switching is not free (re-growing OpenBLAS's pool costs ~30 us), so the setting
is changed only when it differs and stays between runs: a program that mixes fuseflow's small
products with its own large numpy products shares the last setting fuseflow made.
threadpoolctl finds and drives the BLAS that numpy loaded, whichever vendor it is.
"""

from __future__ import annotations

SMALL_PRODUCT_FLOPS = 1 << 24  # 2*m*n*k below this: one thread is faster here


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
