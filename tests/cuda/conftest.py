"""The CUDA tests run in a process of their own, where numba.cuda is the GPU.

`tests/test_cuda.py` starts that process with ``NUMBA_ENABLE_CUDASIM=1`` (numba's CUDA simulator:
kernels run as Python threads) and ``FUSEFLOW_CUDA_TESTS=1``; ``bench/gpu_check.py`` starts it on a
real GPU without the simulator. The main test process must not collect these modules: numba reads
the simulator switch once, when numba.cuda is first imported, and a GPU present there would move
every other test's ops onto it.
"""

import os
import sys

if os.environ.get("FUSEFLOW_CUDA_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
else:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: irtest
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0"):
        # The simulator runs a block's threads as Python threads while its main thread polls them;
        # with the default 5 ms GIL switch interval every syncthreads waits out that poll (measured:
        # an MLP step takes 3.1 s at 5 ms, 0.42 s at 50 us).
        sys.setswitchinterval(5e-5)
