"""The registry of benchmark workloads the harness runs, in order.

A `Workload` names a computation and builds its `Case`s (rows of results) for full or --quick
sizes; the definitions live in the modules by topic (fusion, training, dispatch, compile_time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fuseflow.bench import compile_time, dispatch, fusion, training
from fuseflow.bench.common import Case


@dataclass(frozen=True)
class Workload:
    """A named benchmark: `build(quick)` gives its cases, every runner ready to time."""

    name: str
    summary: str
    build: Callable[[bool], Case | list[Case]]

    def cases(self, quick: bool) -> list[Case]:
        """The cases for full (or --quick) sizes, always as a list."""
        built = self.build(quick)
        return built if isinstance(built, list) else [built]


WORKLOADS = [
    Workload("gelu", "GELU (tanh form) on 2^24 float32", fusion.gelu_case),
    Workload("mix", "a*b + c*d - exp(e) on five arrays of 2^24 float32", fusion.mix_case),
    Workload("softmax", "row softmax of 4096x4096 float32", fusion.softmax_case),
    Workload("mlp_step", "MLP 784-512-10 train step, batch 128: Session.run(train_op)", training.mlp_step_case),
    Workload("plane_fitting", "the introduction's plane fitting: first run, then 201 runs", training.plane_cases),
    Workload("dispatch_jit", "per-call time of fuseflow.jit(add) on (1,) inputs", dispatch.dispatch_jit_case),
    Workload("dispatch_session", "per-call time of Session.run(a + b) on (1,) inputs",
             dispatch.dispatch_session_case),
    Workload("compile_cold", "graph build + first run in a fresh process, empty kernel cache",
             compile_time.cold_cases),
    Workload("compile_warm", "graph build + first run in a second process, warm kernel cache",
             compile_time.warm_cases),
]

BY_NAME = {w.name: w for w in WORKLOADS}
