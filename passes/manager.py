"""The pass manager: a named pipeline of IR-to-IR passes.

A pipeline is a comma-separated list of pass names (kebab-case), e.g.
``"autodiff,simplify,fold,cse,dce,fuse"``. With ``verify=True`` (on in tests, or with
``FUSEFLOW_VERIFY=1``) the IR is verified after every pass, so a pass that
breaks an invariant is caught where it ran. `stages` keeps the IR after each
pass when asked, for ``fuseflow ir --after/--before/--all``.
"""

from __future__ import annotations

import os

from fuseflow.ir.core import Module
from fuseflow.ir.verifier import verify as verify_module
from fuseflow.passes.autodiff import autodiff
from fuseflow.passes.cse import cse
from fuseflow.passes.dce import dce
from fuseflow.passes.fold import fold
from fuseflow.passes.fuse import fuse
from fuseflow.passes.gemm import gemm
from fuseflow.passes.place import Placement, place
from fuseflow.passes.simplify import simplify

PASSES = {
    "autodiff": autodiff,
    "simplify": simplify,
    "fold": fold,
    "cse": cse,
    "dce": dce,
    "place": place,  # takes the manager's `Placement` (the host alone by default)
    "gemm": gemm,
    "fuse": fuse,
}

DEFAULT_PIPELINE = "autodiff,simplify,fold,cse,dce,place,gemm,fuse"


def parse_pipeline(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for n in names:
        if n not in PASSES:
            raise ValueError(f"unknown pass {n!r}; known passes: {', '.join(PASSES)}")
    return names


class PassManager:
    """Runs a pipeline; verifies between passes when asked; can keep the IR after each pass."""

    def __init__(self, pipeline: str = DEFAULT_PIPELINE, verify: bool | None = None, keep_stages: bool = False,
                 placement: Placement | None = None):
        self.names = parse_pipeline(pipeline)
        self.placement = placement or Placement()
        self.verify = os.environ.get("FUSEFLOW_VERIFY", "") not in ("", "0") if verify is None else verify
        self.keep_stages = keep_stages
        self.stages: list[tuple[str, Module]] = []

    def run(self, module: Module) -> Module:
        if self.keep_stages:
            self.stages = [("input", module)]
        for name in self.names:
            module = place(module, self.placement) if name == "place" else PASSES[name](module)
            if self.verify:
                try:
                    verify_module(module)
                except ValueError as e:
                    raise ValueError(f"IR invalid after pass '{name}': {e}") from e
            if self.keep_stages:
                self.stages.append((name, module))
        return module


def optimize(module: Module, pipeline: str = DEFAULT_PIPELINE) -> Module:
    """The module after `pipeline`."""
    return PassManager(pipeline).run(module)
