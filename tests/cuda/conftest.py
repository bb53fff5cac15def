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
