"""Vectorisable transcendental functions for generated kernels, one ``_f32`` and one ``_f64`` per name.

numba lowers ``math.exp``/``np.tanh``... to scalar libm calls, which LLVM cannot vectorise (llvmlite
has no vector math library), so a fused GELU loop runs at libm speed. These replacements are plain
arithmetic: range reduction, a minimax polynomial, a power of two written into the exponent bits.
There are no branches: every choice is a `_select` (one LLVM select), so a loop calling them
vectorises (8 floats or 4 doubles per AVX2 register). Float32 versions compute in float32 (all
constants typed), except sin/cos, whose argument reduction needs 53-bit exact products: they
compute in float64 and round once at the end.

Guarantees (``tests/test_mathlib.py``; float32 checked on all 2**32 inputs with FUSEFLOW_EXHAUSTIVE=tanh,...): at most 2 ulp
(float32) / 4 ulp (float64) from the exact result over the whole input range, subnormals included,
and the special values and signs of zero numpy gives (``exp(-inf) = 0``, ``log(-1) = nan``,
``tanh(-0.0) = -0.0``, ``sin(inf) = nan``...). sin/cos reduce every finite argument exactly
(Payne-Hanek, a table of the bits of 2/pi), not just a "common range": a rarely taken branch to
libm is not an option, since LLVM vectorises it by calling libm on every lane.

Contract with the caller: the functions are ``numba.njit(inline="always")``, so numba inlines them
into the kernel and the kernel's flags apply. Compile it with ``error_model="numpy"`` (otherwise each
division gets a zero check with a raise, which blocks vectorisation) and without ``fastmath``
(reassociation would undo the compensated sums the accuracy rests on). Polynomial steps use
``llvm.fmuladd``: one FMA where the target has it, a multiply and an add elsewhere; the error
bounds hold either way. `FUNCTIONS` maps ``(name, "f32"|"f64")`` to the function.

Coefficients are minimax fits (Remez, in mpmath) of the stated function on the stated interval;
each comment gives the fit's error.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from types import SimpleNamespace

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_inline = njit(inline="always", error_model="numpy", cache=False)

# ----------------------------------------------------------------------------- bit views


@intrinsic
def _to_bits(typingctx, x):
    """The IEEE bits of float `x` as a signed integer of the same width (float32 -> int32)."""
    width = {types.float32: 32, types.float64: 64}.get(x)
    if width is None:
        return None
    sig = (types.int32 if width == 32 else types.int64)(x)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(width))

    return sig, codegen


@intrinsic
def _from_bits(typingctx, bits, like):
    """The float of `like`'s type whose IEEE bits are the low bits of integer `bits`."""
    if like not in (types.float32, types.float64) or not isinstance(bits, types.Integer):
        return None
    width = 32 if like == types.float32 else 64
    sig = like(bits, like)

    def codegen(context, builder, sig, args):
        value = args[0]
        if bits.bitwidth > width:
            value = builder.trunc(value, ir.IntType(width))
        elif bits.bitwidth < width:
            value = builder.sext(value, ir.IntType(width))
        return builder.bitcast(value, ir.FloatType() if width == 32 else ir.DoubleType())

    return sig, codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM select: no branch for numba to build or LLVM to remove."""
    result = typingctx.unify_types(a, b)
    if not isinstance(cond, types.Boolean) or not isinstance(result, (types.Integer, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        a_, b_ = context.cast(builder, args[1], a, result), context.cast(builder, args[2], b, result)
        return builder.select(args[0], a_, b_)

    return result(cond, a, b), codegen


@intrinsic
def _mul_add(typingctx, a, b, c):
    """``a * b + c``, fused into one FMA where the target has one (llvm.fmuladd), else two ops.
    Only for polynomial steps, whose error bound holds either way."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        name = "llvm.fmuladd.f32" if a == types.float32 else "llvm.fmuladd.f64"
        fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ty, [ty] * 3), name)
        return builder.call(fn, args)

    return a(a, b, c), codegen


# ----------------------------------------------------------------------------- constants per dtype


def _consts(F, **values):
    """A namespace of constants typed `F` (floats) or kept as Python ints (bit patterns)."""
    return SimpleNamespace(F=F, **{k: _typed(F, v) for k, v in values.items()})


def _typed(F, v):
    """`v` with floats, and floats in nested tuples, converted to `F`; ints (bit patterns) kept."""
    if isinstance(v, tuple):
        return tuple(_typed(F, c) for c in v)
    return F(v) if isinstance(v, float) else v


# fmt: off
_C32 = _consts(
    np.float32,
    mant=23, bias=127, one_bits=0x3F800000, sqrt_half_bits=0x3F3504F3, mant_mask=0x007FFFFF,
    shift=12582912.0, shift_bits=0x4B400000,  # 1.5 * 2**23: t + shift rounds t to an integer
    tiny=2.0**-126, two_mant=2.0**23,
    log2e=1.4426950408889634,
    ln2_hi=0.693145751953125, ln2_lo=1.428606765330187e-06,  # ln2_hi * k exact for |k| < 2**8
    log_ln2_hi=6.9313812256e-01, log_ln2_lo=9.0580006145e-06,
    exp_hi=89.0, exp_lo=-104.0, expm1_lo=-18.0, expm1_kbig=24,
    tanh_one=9.25,  # 1 - tanh(x) < 2**-25 beyond 9.02: tanh rounds to 1
    # (exp(r) - 1 - r) / r**2 on |r| <= ln2/2, abs error 2**-29.5
    exp_p=(0.5, 1.6666667e-01, 4.1666463e-02, 8.333285e-03, 1.3933773e-03, 1.9907767e-04),
    # (2 atanh(s) - 2s) / s**3 in z = s**2 <= 0.0295, error of z*Q 2**-35.9
    log_q=(0.6666666575753212, 0.4000033891752149, 0.28536052127278478, 0.2361741646836185),
    # (tanh(x) - x) / x**3 in z = x**2 on |x| <= 0.55, relative error of tanh 2**-29.0
    tanh_p=(-3.333332e-01, 1.3332625e-01, -5.385165e-02, 2.1055805e-02, -6.2388456e-03),
    # erf(x) / x - 1 in z = x**2 on |x| <= 1, relative error of erf 2**-29.6
    erf_p=(1.2837917e-01, -3.7612626e-01, 1.12835854e-01, -2.6853813e-02, 5.1883277e-03, -8.010193e-04, 7.85386e-05),
    # erfc(x) exp(x**2) in x - centre on [1, 2] and [2, 4]; error of erf 2**-30.3, 2**-37.1
    erfc_lo=(1.0, 2.0), erfc_mid=(1.5, 3.0), erf_one=4.0,
    erfc_r=((3.2158542e-01, -1.636228e-01, 7.615129e-02, -3.2935888e-02, 1.3366881e-02, -5.09771e-03,
             1.9798435e-03, -8.0413435e-04),
            (1.790011e-01, -5.437256e-02, 1.5885683e-02, -4.4698473e-03, 1.2370006e-03, -3.335203e-04,
             4.4433717e-05, -5.1531784e-05)),
)

_C64 = _consts(
    np.float64,
    mant=52, bias=1023, one_bits=0x3FF0000000000000, sqrt_half_bits=0x3FE6A09E667F3BCD,
    mant_mask=0x000FFFFFFFFFFFFF,
    shift=6755399441055744.0, shift_bits=0x4338000000000000,  # 1.5 * 2**52
    tiny=2.0**-1022, two_mant=2.0**52,
    log2e=1.4426950408889634,
    ln2_hi=6.93147180369123816490e-01, ln2_lo=1.90821492927058770002e-10,  # 32-bit hi: k * hi exact
    log_ln2_hi=6.93147180369123816490e-01, log_ln2_lo=1.90821492927058770002e-10,
    exp_hi=710.0, exp_lo=-746.0, expm1_lo=-40.0, expm1_kbig=53,
    tanh_one=19.5,  # 1 - tanh(x) < 2**-54 beyond 19.07
    # (exp(r) - 1 - r) / r**2 on |r| <= ln2/2, abs error 2**-59.3
    exp_p=(0.5, 0.1666666666666667, 0.041666666666666685, 0.008333333333326056, 0.001388888888887424,
           0.0001984126987509361, 2.480158734771385e-05, 2.755725505466536e-06, 2.7557252550396155e-07,
           2.5105360540424935e-08, 2.0921711801948702e-09),
    # (2 atanh(s) - 2s) / s**3 in z = s**2 <= 0.0295, error of z*Q 2**-57.6
    log_q=(0.6666666666666709538778, 0.3999999999951982348419, 0.2857142872928478753633,
           0.2222219909089342018013, 0.1818357154116941525852, 0.1531316437507681579031,
           0.1481051999082406004251),
    # (tanh(x) - x) / x**3 in z = x**2 on |x| <= 0.55, relative error of tanh 2**-64.8
    tanh_p=(-0.3333333333333333, 0.13333333333333172, -0.05396825396810046, 0.021869488529332397,
            -0.008863235358943003, 0.0035921253704333093, -0.0014558070229639965, 0.000589837002240967,
            -0.00023822082588918065, 9.39678570900075e-05, -3.295033250299417e-05, 7.43187313518129e-06),
    # erf(x) / x - 1 in z = x**2 on |x| <= 1, relative error of erf 2**-62.7
    erf_p=(0.1283791670955126, -0.3761263890318375, 0.11283791670954857, -0.026866170645072896,
           0.005223977624780875, -0.0008548326978742595, 0.00012055331036911085, -1.4925593507102268e-05,
           1.6460972819481492e-06, -1.6350025239598178e-07, 1.4657879901296016e-08, -1.1365666000861305e-09,
           5.945261529824205e-11),
    # erfc(x) exp(x**2) in x - centre on [1, 2], [2, 3.5], [3.5, 6]; error of erf 2**-56.5, -62.2, -69.4
    erfc_lo=(1.0, 2.0, 3.5), erfc_mid=(1.5, 2.75, 4.75), erf_one=6.0,
    erfc_r=((0.32158541645431743, -0.16362291773256016, 0.07615103985551933, -0.03293090529947235,
             0.013377340950005747, -0.005145957554849239, 0.0018861349589961724, -0.0006619298853682686,
             0.00022330890932024573, -7.266112595106256e-05, 2.2871047827942753e-05, -6.961479200059262e-06,
             2.044571542949008e-06, -6.36488612234246e-07, 2.0073760346490713e-07),
            (0.193662096279069, -0.06323763756063007, 0.019758592987275076, -0.005934337897510162,
             0.0017195818857957794, -0.0004821950734858911, 0.0001311818098772991, -3.469870142286299e-05,
             8.940012093387388e-06, -2.2470734223741497e-06, 5.526445894011001e-07, -1.3295526964243003e-07,
             2.991117311930414e-08, -7.360168580016668e-09, 2.5788120676203656e-09),
            (0.11630270721024509, -0.02350344859816464, 0.004661326369131283, -0.0009080988969231136,
             0.00017392830220291588, -3.277578235374973e-05, 6.081122455614654e-06, -1.1115625855707801e-06,
             2.0027580314689353e-07, -3.560587424070987e-08, 6.2595639497935236e-09, -1.0706821740321244e-09,
             1.7548279356574126e-10, -3.607994633080485e-11, 7.490112719879081e-12)),
)
# fmt: on


def _template(src: str, scope: dict):
    """The function ``p`` that `src` defines in `scope`. Its source is registered with linecache,
    so `inspect.getsource` finds it (`codegen.pyllvm` compiles from source)."""
    filename = f"<fuseflow-mathlib-{hashlib.sha1(src.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    exec(compile(src, filename, "exec"), scope)  # noqa: S102 -- a fixed template of ours
    return scope["p"]


def _horner(c):
    """An inlinable ``p(z) = c[0] + c[1] z + ...`` for the constant tuple `c` (unrolled at build time)."""
    n = len(c)
    src = f"def p(z):\n    v = c[{n - 1}]\n"
    src += "".join(f"    v = _mul_add(v, z, c[{i}])\n" for i in range(n - 2, -1, -1))
    src += "    return v\n"
    return _inline(_template(src, {"c": c, "_mul_add": _mul_add}))


# ----------------------------------------------------------------------------- exp, expm1


def _make_exp(C):
    F = C.F
    zero, one = F(0.0), F(1.0)
    exp_p = _horner(C.exp_p)
    mant, bias, kbig = C.mant, C.bias, C.expm1_kbig
    hi_clamp, exp_lo, expm1_lo = C.exp_hi, C.exp_lo, C.expm1_lo
    log2e, shift, shift_bits, ln2_hi, ln2_lo = C.log2e, C.shift, C.shift_bits, C.ln2_hi, C.ln2_lo

    @_inline
    def pow2(k, like):
        # 2**k for bias-1 >= k >= 1-bias, by writing the exponent field
        return _from_bits((k + bias) << mant, like)

    @_inline
    def scale(p, k):
        # p * 2**k for k over the whole finite range and beyond: two exact factors, so a
        # subnormal result is rounded once and an overflow gives inf.
        k1 = k >> 1
        return p * pow2(k1, p) * pow2(k - k1, p)

    @_inline
    def reduce(x, lo):
        # x = k ln2 + hi - lo with |hi - lo| <= ln2/2; returns (k, r, c) where r + c = hi - lo
        # and c holds the rounding error of r.
        xc = _select(x > hi_clamp, hi_clamp, x)  # clamps keep NaN
        xc = _select(xc < lo, lo, xc)
        t = xc * log2e + shift
        n = t - shift
        k = _to_bits(t) - shift_bits
        hi = xc - n * ln2_hi
        lo_ = n * ln2_lo
        r = hi - lo_
        c = (hi - r) - lo_
        return k, r, c

    @_inline
    def exp_parts(x):
        # exp(x) = (ph + pl) 2**k, ph = fl(1 + s) and pl its rounding error (for sigmoid)
        k, r, c = reduce(x, exp_lo)
        s = r + (c + r * r * exp_p(r))
        ph = one + s
        return k, ph, (one - ph) + s

    @_inline
    def exp(x):
        # exp_parts without the correction term: r's own rounding is an error below 2**-25
        # relative (float32; 2**-54 float64) of exp(r), and nothing else needs the low part.
        # Five instructions fewer: a*b + c*d - exp(e) on five 2^24 float32 arrays, 12.9 -> 12.2 ms.
        xc = _select(x > hi_clamp, hi_clamp, x)  # clamps keep NaN
        xc = _select(xc < exp_lo, exp_lo, xc)
        t = _mul_add(xc, log2e, shift)
        n = t - shift
        k = _to_bits(t) - shift_bits
        r = _mul_add(-n, ln2_lo, _mul_add(-n, ln2_hi, xc))  # n ln2_hi is exact: fused or not, the same
        return scale(one + _mul_add(r * r, exp_p(r), r), k)

    @_inline
    def expm1_moderate(y):
        # expm1(y) for 0 <= y <= 2 tanh_one (or NaN): 2**k expm1(r) + (2**k - 1). No overflow or
        # subnormal result, so one power of two scales it; y below ln2/2 gives k = 0 and r = y
        # exactly. No correction term for r: its rounding is an absolute error below 2**-25 of
        # expm1(r), which tanh's e / (e + 2) damps further.
        t = _mul_add(y, log2e, shift)
        n = t - shift
        k = _to_bits(t) - shift_bits
        r = _mul_add(-n, ln2_lo, _mul_add(-n, ln2_hi, y))  # n ln2_hi is exact: fused or not, the same
        s = pow2(k, y)
        return _mul_add(s, _mul_add(r * r, exp_p(r), r), s - one)

    @_inline
    def expm1(x):
        k, r, c = reduce(x, expm1_lo)
        q = c + r * r * exp_p(r)  # expm1(r) = r + q
        # k small: 2**k (1 + r + q) - 1 = (s - 1) + s r + s q, with s - 1 exact and the first sum
        # split exactly (Fast2Sum: |s - 1| >= |s r| or s - 1 = 0).
        s = pow2(k, x)
        a = s - one
        b = s * r
        yh = a + b
        yl = b - (yh - a)
        y_small = yh + (yl + s * q)
        # k large: 2**k (1 + r + q - 2**-k); the -1 only matters as a correction to q.
        u = pow2(_select(k < bias - 1, -k, 1 - bias), x)
        y_big = scale(one + (r + (q - u)), k)
        y = _select(k > kbig, y_big, y_small)
        return _select(x == zero, x, y)  # expm1(-0.0) = -0.0

    return exp, expm1, exp_parts, scale, expm1_moderate


exp_f32, expm1_f32, _exp_parts_f32, _scale_f32, _expm1_moderate_f32 = _make_exp(_C32)
exp_f64, expm1_f64, _exp_parts_f64, _scale_f64, _expm1_moderate_f64 = _make_exp(_C64)

# ----------------------------------------------------------------------------- log, log1p


def _make_log(C):
    F = C.F
    zero, one, two, half = F(0.0), F(1.0), F(2.0), F(0.5)
    inf, nan = F(np.inf), F(np.nan)
    mid_lo, mid_hi = F(-0.2928932188134524), F(0.41421356237309503)  # 1 + x in [sqrt(1/2), sqrt(2))
    log_q = _horner(C.log_q)
    mant, bias, mant_mask, sqrt_half_bits = C.mant, C.bias, C.mant_mask, C.sqrt_half_bits
    shift_bits = C.one_bits - C.sqrt_half_bits
    tiny, two_mant, ln2_hi, ln2_lo = C.tiny, C.two_mant, C.log_ln2_hi, C.log_ln2_lo

    @_inline
    def core(f, k, c):
        # log(2**k (1 + f)) + c for sqrt(1/2) <= 1 + f < sqrt(2), as in fdlibm: with s = f / (2 + f),
        # log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2)), R = 2 atanh(s)/s - 2.
        s = f / (two + f)
        z = s * s
        r = z * log_q(z)
        hfsq = half * f * f
        dk = F(k)
        return dk * ln2_hi - ((hfsq - (s * (hfsq + r) + (dk * ln2_lo + c))) - f)

    @_inline
    def split(u):
        # u = 2**k (1 + f) with sqrt(1/2) <= 1 + f < sqrt(2), for normal positive u
        iu = _to_bits(u) + shift_bits
        k = (iu >> mant) - bias
        f = _from_bits((iu & mant_mask) + sqrt_half_bits, u) - one
        return k, f

    @_inline
    def log(x):
        sub = x < tiny
        k, f = split(_select(sub, x * two_mant, x))
        y = core(f, _select(sub, k - mant, k), zero)
        y = _select(x < inf, y, x)  # log(inf) = inf, log(nan) = nan
        y = _select(x == zero, -inf, y)
        return _select(x < zero, nan, y)

    @_inline
    def log1p(x):
        u = one + x
        k, f = split(u)
        # c ~ log(1 + x) - log(u): the part of x that u lost
        c = _select(k >= 2, one - (u - x), x - (u - one))
        c = _select(k <= mant + 1, c / _select(u == zero, one, u), zero)  # u = 0 only for x = -1
        mid = (x > mid_lo) & (x < mid_hi)
        y = core(_select(mid, x, f), _select(mid, 0, k), _select(mid, zero, c))
        y = _select(x == zero, x, y)  # log1p(-0.0) = -0.0
        y = _select(x < inf, y, x)
        y = _select(x == -one, -inf, y)
        return _select(x < -one, nan, y)

    return log, log1p


log_f32, log1p_f32 = _make_log(_C32)
log_f64, log1p_f64 = _make_log(_C64)


# ----------------------------------------------------------------------------- tanh, sigmoid, erf


def _piecewise_horner(bounds, centres, coefs):
    """An inlinable ``p(a) = coefs[i](a - centres[i])`` on ``bounds[i] <= a < bounds[i + 1]``.

    Every piece has the same degree; the piece is chosen per coefficient by selects, so the
    polynomial is one Horner chain whatever the piece.
    """
    n, deg = len(coefs), len(coefs[0]) - 1

    def pick(table):
        # the entry of `table` (a format with one {} for the piece) for the piece a falls in
        expr = table.format(n - 1)
        for i in range(n - 2, -1, -1):
            expr = f"_select(in{i}, {table.format(i)}, {expr})"
        return expr

    src = "def p(a):\n"
    src += "".join(f"    in{i} = a < b[{i + 1}]\n" for i in range(n - 1))
    src += "    v = a - " + pick("m[{}]") + "\n"
    src += "    acc = " + pick(f"k[{{}}][{deg}]") + "\n"
    src += "".join("    acc = _mul_add(acc, v, " + pick(f"k[{{}}][{j}]") + ")\n" for j in range(deg - 1, -1, -1))
    src += "    return acc\n"
    return _inline(_template(src, {"b": bounds, "m": centres, "k": coefs, "_select": _select, "_mul_add": _mul_add}))


def _make_exp_based(C, exp, exp_parts, scale, expm1_moderate):
    F = C.F
    zero, one, two = F(0.0), F(1.0), F(2.0)
    tanh_p, erf_p = _horner(C.tanh_p), _horner(C.erf_p)
    erfc_r = _piecewise_horner(C.erfc_lo, C.erfc_mid, C.erfc_r)
    tanh_small, tanh_one, erf_small, erf_one = F(0.55), C.tanh_one, F(1.0), C.erf_one

    @_inline
    def tanh(x):
        # tanh|x| = |x| + |x|**3 P(x**2) near 0, else e / (e + 2) with e = expm1(2|x|) > 1: no
        # cancellation. Beyond tanh_one tanh rounds to 1: |x| is clamped there (NaN kept), where
        # e + 2 rounds to e, so tanh(inf) = 1 exactly.
        a = abs(x)
        z = a * a
        small = _mul_add(a, z * tanh_p(z), a)
        e = expm1_moderate(_select(a > tanh_one, tanh_one, a) * two)
        return math.copysign(_select(a < tanh_small, small, e / (e + two)), x)

    @_inline
    def sigmoid(x):
        # 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|): exp never overflows, and the
        # tail towards -inf keeps full relative accuracy down to the subnormals. e and 1 + e are
        # carried as unevaluated sums hi + lo, so only the division rounds at full size.
        k, ph, pl = exp_parts(-abs(x))
        e, e_lo = scale(ph, k), scale(pl, k)
        d = one + e
        d_lo = ((one - d) + e) + e_lo
        pos = x >= zero
        num, num_lo = _select(pos, one, e), _select(pos, zero, e_lo)
        q = num / d
        return q + (num_lo - q * d_lo) / d

    @_inline
    def erf(x):
        # |x| < 1: |x| + |x| P(x**2), P = erf(x)/x - 1 (so 2/sqrt(pi) is never rounded). Above:
        # 1 - exp(-x**2) R(|x|) with R = erfc(x) exp(x**2) piecewise; rounding x**2 costs < 0.2 ulp
        # there because erfc(x) <= erfc(1) = 0.157.
        a = abs(x)
        small = a + a * erf_p(a * a)
        ac = _select(a > erf_one, erf_one, a)  # erf rounds to 1 beyond erf_one; keeps NaN
        big = one - exp(-(ac * ac)) * erfc_r(ac)
        return math.copysign(_select(a < erf_small, small, big), x)

    return tanh, sigmoid, erf


tanh_f32, sigmoid_f32, erf_f32 = _make_exp_based(_C32, exp_f32, _exp_parts_f32, _scale_f32, _expm1_moderate_f32)
tanh_f64, sigmoid_f64, erf_f64 = _make_exp_based(_C64, exp_f64, _exp_parts_f64, _scale_f64, _expm1_moderate_f64)

# ----------------------------------------------------------------------------- sin, cos

# floor(2/pi * 2**1440): enough bits to reduce any float64 (2**1024 * 2/pi mod 4, plus 180 bits)
_TWO_OVER_PI = int(
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e006492eea09d1921c"
    "fe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f49c845f8bbdf9283b1ff897ffde05980f"
    "ef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d7527bac7ebe5f17b3d0739f78a5292ea6bfb5fb11f8d5d08"
    "56033046fc7b6babf0cfbc209af4361da9e391615ee61b086599855f14a068408dffd880",
    16,
)
_TWO_OVER_PI_BITS = 1440


def _pio2_table(e_min: int, e_max: int, offset: int, width: int, chunks: int) -> np.ndarray:
    """Payne-Hanek table: row ``e - e_min`` holds d = 2/pi * 2**(e - offset) mod 4 as `chunks` float64
    slices of `width` bits at fixed weights (the first from 2**1 down), so that for the integer
    significand M of a float with biased exponent e, M * slice is exact and x * 2/pi = sum M * slice
    (mod 4, up to the bits below the last slice)."""
    low = 2 - width * chunks  # weight of the last bit kept
    rows = []
    for e in range(e_min, e_max + 1):
        d = (_TWO_OVER_PI >> (_TWO_OVER_PI_BITS + offset + low - e)) & ((1 << (2 - low)) - 1)
        rows.append(
            [
                math.ldexp((d >> (width * (chunks - 1 - k))) & ((1 << width) - 1), low + width * (chunks - 1 - k))
                for k in range(chunks)
            ]
        )
    table = np.array(rows, dtype=np.float64)
    table.flags.writeable = False
    return table


# float32: x = M 2**(e - 150), M < 2**24; 29-bit slices keep M * slice within 53 bits
_PIO2_F32 = _pio2_table(126, 254, 150, 29, 3)
# float64: x = M 2**(e - 1075), M = Mh 2**26 + Ml; 26-bit slices keep Mh * slice, Ml * slice exact
_PIO2_F64 = _pio2_table(1022, 2046, 1075, 26, 7)

_SHIFT52 = 6755399441055744.0  # 1.5 * 2**52: (v + _SHIFT52) - _SHIFT52 rounds v to an integer
_PIO2 = 1.5707963267948966  # pi/2 = _PIO2 + _PIO2_TAIL; _PIO2 = _PIO2_H + _PIO2_L, _PIO2_H of 26 bits
_PIO2_TAIL = 6.123233995736766e-17
_PIO2_H = 1.5707963109016418
_PIO2_L = _PIO2 - _PIO2_H


@_inline
def _two_sum(a, b):
    # a + b = s + e exactly (Knuth)
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@_inline
def _round_to(v, s):
    # v rounded to a multiple of g = s / (1.5 * 2**52) = s / (0.75 * 2**53), for |v| < s / 3
    return (v + s) - s


@_inline
def _add_rounded(s, v):
    # (quadrant bits, s + v reduced to [-1/2, 1/2]); the quadrant is read from the bits of the
    # rounding sum, so no float-to-int conversion is needed
    s = s + v
    w = s + _SHIFT52
    return _to_bits(w), s - (w - _SHIFT52)


@_inline
def _reduce_pio2_f32(a):
    """(q, r, 0.0) with |a| = q pi/2 + r mod 2 pi, |r| <= pi/4, r float64; for finite a >= pi/4 (float32)."""
    b = np.int64(_to_bits(a))
    i = (b >> 23) - 126
    i = _select(i < 0, 0, _select(i > 128, 128, i))
    m = np.float64((b & 0x7FFFFF) | 0x800000)
    # r_k = m * slice_k is exact, a multiple of 2**(-27 - 29k) below 2**(26 - 29k)
    r0, r1, r2 = m * _PIO2_F32[i, 0], m * _PIO2_F32[i, 1], m * _PIO2_F32[i, 2]
    q0, s = _add_rounded(0.0, r0)  # the fraction of r0, exact
    # each sum is exact while small (53 bits reach down to the last bit of r1, then of r2) and
    # relatively accurate once large; the bits below r2 weigh < 2**-61, the closest float32 to a
    # multiple of pi/2 is 2**-30 away (in units of pi/2)
    s = s + r1
    q1, s = _add_rounded(s, r2)
    return (q0 + q1) & 3, s * _PIO2, 0.0


@_inline
def _reduce_pio2_f64(a):
    """(q, r, r_lo) with |a| = q pi/2 + r + r_lo mod 2 pi, |r| <= pi/4; for finite a >= pi/4 (float64)."""
    b = _to_bits(a)
    i = (b >> 52) - 1022
    i = _select(i < 0, 0, _select(i > 1024, 1024, i))
    m = _from_bits((b & 0x000FFFFFFFFFFFFF) | 0x4330000000000000, a)  # the significand M, 2**52 <= M < 2**53
    mh = _from_bits(_to_bits(m) & -0x4000000, a)  # top 27 bits of M
    ml = m - mh
    t = _PIO2_F64
    # level k: p_k = mh * t[k+1] and q_k = ml * t[k] are exact multiples of 2**(-24 - 26k), below
    # 2**(29 - 26k); split each at 2**(2 - 26k) and regroup so every level sum is exact.
    p0, p1, p2, p3, p4, p5 = mh * t[i, 1], mh * t[i, 2], mh * t[i, 3], mh * t[i, 4], mh * t[i, 5], mh * t[i, 6]
    q0, q1, q2, q3, q4, q5 = ml * t[i, 0], ml * t[i, 1], ml * t[i, 2], ml * t[i, 3], ml * t[i, 4], ml * t[i, 5]
    hp1, hq1 = _round_to(p1, 0.75 * 2.0**29), _round_to(q1, 0.75 * 2.0**29)
    hp2, hq2 = _round_to(p2, 0.75 * 2.0**3), _round_to(q2, 0.75 * 2.0**3)
    hp3, hq3 = _round_to(p3, 0.75 * 2.0**-23), _round_to(q3, 0.75 * 2.0**-23)
    hp4, hq4 = _round_to(p4, 0.75 * 2.0**-49), _round_to(q4, 0.75 * 2.0**-49)
    hp5, hq5 = _round_to(p5, 0.75 * 2.0**-75), _round_to(q5, 0.75 * 2.0**-75)
    big = 0.75 * 2.0**55  # drop multiples of 4
    v0 = ((p0 - _round_to(p0, big)) + (q0 - _round_to(q0, big))) + (hp1 + hq1)
    v1 = ((p1 - hp1) + (q1 - hq1)) + (hp2 + hq2)
    v2 = ((p2 - hp2) + (q2 - hq2)) + (hp3 + hq3)
    v3 = ((p3 - hp3) + (q3 - hq3)) + (hp4 + hq4)
    v4 = ((p4 - hp4) + (q4 - hq4)) + (hp5 + hq5)
    n0, s = _add_rounded(0.0, v0)
    s = s + v1  # exact: multiples of 2**-50 below 1
    # the remaining sums, with their rounding errors kept: s + lo holds the fraction to 2**-100
    s, e2 = _two_sum(s, v2)
    s, e3 = _two_sum(s, v3)
    n1, s = _add_rounded(s, 0.0)
    lo = (e2 + e3) + v4
    # (s + lo) pi/2 as a double-double: Dekker's exact product of s and the 53-bit pi/2
    c = s * 134217729.0
    sh = c - (c - s)
    sl = s - sh
    r = s * _PIO2
    r_lo = ((sh * _PIO2_H - r) + sh * _PIO2_L + sl * _PIO2_H) + sl * _PIO2_L
    r_lo = r_lo + (s * _PIO2_TAIL + lo * _PIO2)
    return (n0 + n1) & 3, r, r_lo


def _make_trig(F, reduce, sin_s, cos_c):
    sin_s, cos_c = _horner(sin_s), _horner(cos_c)
    zero, inf = F(0.0), F(np.inf)
    pio4 = F(0.7853981633974483)

    @_inline
    def quadrant(q, r, r_lo):
        # sin(r + r_lo + q pi/2) in float64, r_lo a correction below ulp(r)
        z = r * r
        hz = 0.5 * z
        s = r + (r * (z * sin_s(z)) + r_lo * (1.0 - hz))
        w = 1.0 - hz
        c = w + (((1.0 - w) - hz) + (z * z * cos_c(z) - r * r_lo))
        v = _select((q & 1) != 0, c, s)
        return _select((q & 2) != 0, -v, v)

    @_inline
    def reduced(a):
        q, r, r_lo = reduce(a)
        small = a < pio4
        return _select(small, 0, q), _select(small, np.float64(a), r), _select(small, 0.0, r_lo)

    @_inline
    def sin(x):
        a = abs(x)
        q, r, r_lo = reduced(a)
        y = F(quadrant(q, r, r_lo))
        y = _select(x < zero, -y, y)
        y = _select(x == zero, x, y)  # sin(-0.0) = -0.0
        return _select(a < inf, y, x - x)  # sin(+-inf) = nan

    @_inline
    def cos(x):
        a = abs(x)
        q, r, r_lo = reduced(a)
        y = F(quadrant(q + 1, r, r_lo))
        return _select(a < inf, y, x - x)

    return sin, cos


# fmt: off
# sin(r) = r + r**3 S(r**2), cos(r) = 1 - r**2/2 + r**4 C(r**2) on |r| <= pi/4: float32 variant (in
# float64, relative error 2**-36.8, 2**-41.3) and float64 variant (2**-57.1, 2**-62.1)
sin_f32, cos_f32 = _make_trig(
    np.float32, _reduce_pio2_f32,
    (-0.16666666644202188, 0.008333329326706468, -0.00019839260753528926, 2.717341837262255e-06),
    (0.04166666664791979, -0.001388888554548308, 2.4799911001553665e-05, -2.7237103776925346e-07),
)
sin_f64, cos_f64 = _make_trig(
    np.float64, _reduce_pio2_f64,
    (-0.1666666666666664, 0.008333333333323662, -0.00019841269830144393, 2.755731365185318e-06,
     -2.505073457106949e-08, 1.5894710581634463e-10),
    (0.04166666666666665, -0.001388888888888284, 2.4801587294628004e-05, -2.7557315738613277e-07,
     2.0875897738682843e-09, -1.1367981880469046e-11),
)
# fmt: on

FUNCTIONS = {
    (name, suffix): globals()[f"{name}_{suffix}"]
    for name in ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "erf", "sin", "cos")
    for suffix in ("f32", "f64")
}
