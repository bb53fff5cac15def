"""``python -m fuseflow.bench``: the benchmark harness (the same as ``fuseflow bench``)."""

from fuseflow.bench.harness import main

main()
