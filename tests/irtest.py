"""Helpers for IR-level tests: parse a module, run one pass, check the laws every pass output obeys.

`apply(pass_fn, text)` parses `text`, verifies it, runs the pass and returns the output after
`check_ir` (verifier + print -> parse -> print round trip). `assert_ir(module, expected)` compares
with expected IR text; both sides are printed by the printer, so the expected text may use any
value names. `same_values` compares two result tuples of the interpreter, NaN where NaN.
"""

from __future__ import annotations

import numpy as np

from fuseflow.ir.core import Module, Op, walk_ops
from fuseflow.ir.parser import parse_module
from fuseflow.ir.printer import print_module
from fuseflow.ir.verifier import verify
from fuseflow.passes.dce import dce


def check_ir(module: Module) -> Module:
    """Asserts that `module` verifies and that print -> parse -> print gives the same text."""
    verify(module)
    text = print_module(module)
    again = parse_module(text)
    verify(again)
    assert print_module(again) == text, "print -> parse -> print changed the IR"
    return module


def apply(pass_fn, text: str) -> Module:
    """`pass_fn` run on the module `text` denotes; input and output both pass `check_ir`."""
    module = check_ir(parse_module(text))
    return check_ir(pass_fn(module))


def normalize(text: str) -> str:
    return print_module(check_ir(parse_module(text)))


def assert_ir(module: Module, expected: str, drop_dead: bool = False) -> None:
    """`module` prints exactly as the IR `expected` does; with `drop_dead`, dead ops (DCE's business) are
    removed from `module` first, so a rewrite's golden output lists only what it owns."""
    got = print_module(dce(module) if drop_dead else module)
    want = normalize(expected)
    assert got == want, f"IR differs.\n--- got:\n{got}\n--- expected:\n{want}"


def op_names(module: Module, fn: str = "main") -> list[str]:
    """The names of the top-level ops of `fn`, terminator excluded."""
    return [op.name for op in module.functions[fn].ops[:-1]]


def fused_ops(module: Module, fn: str = "main") -> list[Op]:
    return [op for op in module.functions[fn].ops if op.name == "fused"]


def region_op_names(op: Op) -> list[str]:
    """The op names of a ``fused`` op's region, constants and ``yield`` excluded."""
    return [o.name for o in walk_ops(op.regions[0]) if o.name not in ("constant", "yield")]


def close_mask(got, want, rtol: float = 0.0, atol: float = 0.0) -> np.ndarray:
    """Elementwise: NaN where NaN, the same infinity, or finite and within `rtol`/`atol` (floats);
    equal (other dtypes)."""
    g, w = np.asarray(got), np.asarray(want)
    if w.dtype.kind != "f":
        return g == w
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    finite = np.isfinite(g64) & np.isfinite(w64)
    with np.errstate(invalid="ignore"):
        near = np.isclose(g64, w64, rtol=rtol, atol=atol)
    return (np.isnan(g64) & np.isnan(w64)) | (np.isinf(w64) & (g64 == w64)) | (finite & near)


def same_values(got, want, rtol: float = 0.0, atol: float = 0.0, zero_sign: bool = False, where=None) -> None:
    """Each pair of arrays has the same dtype and shape, NaN in the same places, the same infinities
    (with their signs), and the other values equal within `rtol`/`atol`; with `zero_sign`, zeros
    must also have the same sign. `where` (one boolean mask per result, or None) limits the
    comparison of values to the elements it marks."""
    assert len(got) == len(want), f"{len(got)} results, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, f"result {i}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        checked = np.ones(w.shape, bool) if where is None else where[i]
        bad = ~close_mask(g, w, rtol, atol) & checked
        if zero_sign and w.dtype.kind == "f":
            bad |= checked & (g == 0) & (w == 0) & (np.signbit(g) != np.signbit(w))
        if bad.any():
            at = [tuple(int(j) for j in ix) for ix in np.argwhere(bad)[:4]]
            shown = ", ".join(f"at {ix}: {g[ix]!r} vs {w[ix]!r}" for ix in at)
            raise AssertionError(f"result {i}: {int(bad.sum())} of {w.size} elements differ (rtol {rtol}, "
                                 f"atol {atol}{', signs of zeros' if zero_sign else ''}): {shown}\n{g}\nvs\n{w}")
