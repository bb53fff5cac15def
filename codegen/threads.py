"""Splitting a kernel's outer loop across the machine's cores with our own worker threads.

A generated kernel takes the range ``[lo, hi)`` of its outermost loop and releases the GIL
(``nogil``), so running it on slices from several threads is parallel. We do this instead of
numba's ``prange``: a parallel numba function compiles two to three times slower (its parfor
lowering dominated the first run of an MLP step), and a thread that waits on a queue wakes in
microseconds without the spin-waiting that made OpenMP's workers cost milliseconds on a 2-core VM.
"""

from __future__ import annotations

import os
import queue
import threading


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Workers:
    """``cores - 1`` daemon threads; `run` gives each a slice and does the first one itself."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._tasks: list[queue.SimpleQueue] = []
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()

    def _start(self) -> None:
        for _ in range(self.count):
            tasks: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(tasks,), daemon=True, name="fuseflow-worker").start()
            self._tasks.append(tasks)

    def _serve(self, tasks: queue.SimpleQueue) -> None:
        while True:
            fn, args = tasks.get()
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001  (handed to the caller, which raises it)
                self._done.put(e)
            else:
                self._done.put(None)
            del fn, args  # holding the arrays while idle would stop the runtime recycling them

    def run(self, fn, args: tuple, n: int) -> None:
        """``fn(*args, lo, hi)`` over slices covering ``[0, n)``; serially when the workers are busy.

        The range is cut into `CHUNKS_PER_THREAD` slices per thread, which the threads take in
        turn: a thread slowed by another process on its core takes fewer, instead of the whole
        run waiting for its one fixed half.
        """
        if self.count == 0 or n < 2 or not self._lock.acquire(blocking=False):
            fn(*args, 0, n)
            return
        try:
            if not self._tasks:
                self._start()
            chunks = min(CHUNKS_PER_THREAD * (self.count + 1), n)
            bounds = [n * k // chunks for k in range(chunks + 1)]
            todo = iter(range(chunks))  # shared: next() hands each chunk out once (atomic under the GIL)

            def work() -> None:
                for k in todo:
                    fn(*args, bounds[k], bounds[k + 1])

            helpers = min(self.count, chunks - 1)
            for k in range(helpers):
                self._tasks[k].put((work, ()))
            error = None
            try:
                work()
            except BaseException as e:  # noqa: BLE001  (wait for the others before raising)
                error = e
            for _ in range(helpers):
                error = self._done.get() or error
            if error is not None:
                raise error
        finally:
            self._lock.release()


CHUNKS_PER_THREAD = 4
WORKERS = Workers(max(_cores() - 1, 0))
