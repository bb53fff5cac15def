"""Scalar helper functions that generated CPU kernels call (all ``numba.njit``).

Generated source imports this module as ``_h`` and calls e.g. ``_h.floor_div_int``.
The names are the contract with `fuseflow.codegen.scalar`: a CUDA backend supplies a
module of device functions with the same names. Float helpers that need typed
constants come in ``_f32``/``_f64`` versions so float32 arithmetic stays float32
(numpy computes float32 ops in float32; float16 ops are computed in float32 and
rounded, as numpy's half loops do). Integer helpers take int64 operands.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_jit = njit(error_model="numpy", cache=False)

INT64_MIN = np.int64(-(2**63))
INT32_MIN = np.int64(-(2**31))

# ----------------------------------------------------------------------------- float16


@_jit
def _round_half_even(v):
    r = math.floor(v)
    d = v - r
    if d > 0.5 or (d == 0.5 and r % 2.0 == 1.0):
        r += 1.0
    return np.int64(r)


@_jit
def _f16_bits_slow(x):
    # Arithmetic rounding for what the bit path leaves out: zeros, subnormals, overflow, inf, NaN.
    if np.isnan(x):
        return np.uint16(0xFE00 if math.copysign(1.0, x) < 0.0 else 0x7E00)
    sign = 0x8000 if math.copysign(1.0, x) < 0.0 else 0
    a = abs(x)
    if a >= 65520.0:  # halfway between 65504 (largest half) and 2**16: rounds to inf
        return np.uint16(sign | 0x7C00)
    if a < 6.103515625e-05:  # below 2**-14: subnormal (a carry into 0x400 is the smallest normal)
        return np.uint16(sign | _round_half_even(a * 16777216.0))
    m, e = math.frexp(a)  # a = m * 2**e with 0.5 <= m < 1
    q = _round_half_even(m * 2048.0)
    biased = e + 14
    if q == 2048:
        q = 1024
        biased += 1
    return np.uint16(sign | (biased << 10) | (q - 1024))


_EXP64 = np.uint64(0x7FF0000000000000)
_SIG64 = np.uint64(0x000FFFFFFFFFFFFF)
_HALF_MIN_EXP = np.uint64(0x3F00000000000000)  # exponent of 2**-15: below it halves are subnormal
_HALF_INF_EXP = np.uint64(0x40F0000000000000)  # exponent of 2**16: overflow
_ROUND_BITS = np.uint64(0x000007FFFFFFFFFF)
_ROUND_HALF = np.uint64(0x0000020000000000)
_S42, _S48 = np.uint64(42), np.uint64(48)
_SIGN16 = np.uint64(0x8000)


@_jit
def f32_to_f16(x):
    """The IEEE half bits (uint16) nearest to `x` (float32 or float64), ties to even.

    Rounds once from the float64 value (numpy's ``npy_doublebits_to_halfbits``), so a
    float64 gives the same bits as ``astype(float16)``.
    """
    d = np.float64(x).view(np.uint64)
    e = d & _EXP64
    if e <= _HALF_MIN_EXP or e >= _HALF_INF_EXP:
        return _f16_bits_slow(np.float64(x))
    sig = d & _SIG64
    if (sig & _ROUND_BITS) != _ROUND_HALF:  # not an exact tie with an even last bit: round up
        sig += _ROUND_HALF
    # A carry out of the significand bumps the exponent (to inf at the top): still right.
    return np.uint16(((d >> _S48) & _SIGN16) + ((e - _HALF_MIN_EXP) >> _S42) + (sig >> _S42))


@_jit
def f16_to_f32(h):
    """The float32 value of IEEE half bits `h` (uint16); exact."""
    h = np.uint32(h)
    e = h & np.uint32(0x7C00)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    if e == 0:  # zero or subnormal: m * 2**-24 is exact
        v = np.float32(h & np.uint32(0x3FF)) * np.float32(5.960464477539063e-08)
        return -v if sign else v
    if e == 0x7C00:
        bits = sign | np.uint32(0x7F800000) | ((h & np.uint32(0x3FF)) << np.uint32(13))
    else:
        bits = sign | (((h & np.uint32(0x7FFF)) + np.uint32(0x1C000)) << np.uint32(13))
    return np.uint32(bits).view(np.float32)


@_jit
def f16_round(x):
    """`x` rounded to the nearest float16 value, returned as float32."""
    return f16_to_f32(f32_to_f16(x))


# ----------------------------------------------------------------------------- integers


@_jit
def floor_div_int(a, b):
    """Python floor division of int64s; division by zero gives 0, MIN // -1 wraps."""
    if b == 0:
        return np.int64(0)
    if b == -1:
        return np.int64(0) - a
    return a // b


@_jit
def floor_mod_int(a, b):
    """Python modulo of int64s (sign of the divisor); modulo by zero gives 0."""
    if b == 0 or b == -1:
        return np.int64(0)
    return a % b


@_jit
def trunc_div_int(a, n):
    """int64 `a` divided by a count `n`, truncating toward zero (an empty count divides by 1)."""
    n = max(n, 1)
    return -((-a) // n) if a < 0 else a // n


@_jit
def int_pow(a, b):
    """``a ** b`` of int64s by squaring, wrapping; negative `b`: 1 for a=1, +-1 for a=-1, else 0."""
    if b < 0:
        if a == 1:
            return np.int64(1)
        if a == -1:
            return np.int64(1) if b % 2 == 0 else np.int64(-1)
        return np.int64(0)
    r = np.int64(1)
    while b:
        if b & 1:
            r *= a
        a *= a
        b >>= 1
    return r


@_jit
def sign_int(x):
    """-1, 0 or 1 as int64."""
    if x > 0:
        return np.int64(1)
    if x < 0:
        return np.int64(-1)
    return np.int64(0)


@_jit
def f2i32(x):
    """Float to int truncating, through int32 as numpy does on x86 (NaN/out of range: INT32_MIN)."""
    if np.isnan(x) or x >= 2147483648.0 or x <= -2147483649.0:
        return INT32_MIN
    return np.int64(x)


@_jit
def f2i64(x):
    """Float to int64 truncating (NaN/out of range: INT64_MIN, as numpy does on x86)."""
    if np.isnan(x) or x >= 9.223372036854775807e18 or x < -9.223372036854775807e18:
        return INT64_MIN
    return np.int64(x)


# ----------------------------------------------------------------------------- any numeric


@_jit
def maximum(a, b):
    """numpy.maximum: a NaN operand propagates."""
    if np.isnan(a):
        return a
    if np.isnan(b):
        return b
    return max(a, b)


@_jit
def minimum(a, b):
    """numpy.minimum: a NaN operand propagates."""
    if np.isnan(a):
        return a
    if np.isnan(b):
        return b
    return min(a, b)


# ----------------------------------------------------------------------------- floats, per type


def _float_helpers(ft):
    zero, half, one = ft(0.0), ft(0.5), ft(1.0)

    @_jit
    def sign(x):
        if x > zero:
            return one
        if x < zero:
            return -one
        return zero if x == zero else x  # numpy: +0.0 for both zeros; NaN stays NaN

    @_jit
    def rsqrt(x):
        return one / np.sqrt(x)

    @_jit
    def divmod_(a, b):
        # numpy's npy_divmod: fmod, then Python's sign convention, then snap to an integer.
        mod = np.fmod(a, b)
        if b == zero:
            return a / b, mod
        div = (a - mod) / b
        if mod != zero:
            if (b < zero) != (mod < zero):
                mod += b
                div -= one
        else:
            mod = np.copysign(zero, b)
        if div != zero:
            floordiv = np.floor(div)
            if div - floordiv > half:
                floordiv += one
        else:
            floordiv = np.copysign(zero, a / b)
        return floordiv, mod

    @_jit
    def floor_div(a, b):
        return divmod_(a, b)[0]

    @_jit
    def floor_mod(a, b):
        return divmod_(a, b)[1]

    return sign, rsqrt, floor_div, floor_mod


sign_f32, rsqrt_f32, floor_div_f32, floor_mod_f32 = _float_helpers(np.float32)
sign_f64, rsqrt_f64, floor_div_f64, floor_mod_f64 = _float_helpers(np.float64)

# ----------------------------------------------------------------------------- random numbers
# Same counter-based scheme as `fuseflow.ir.opdefs_data` (splitmix64 over uint64).

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE_U, _TWO_U = np.uint64(1), np.uint64(2)
_TWO_M53 = 1.0 / 9007199254740992.0


@_jit
def splitmix64(x):
    """The splitmix64 finaliser of a uint64 (wrapping)."""
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _MUL1
    x = (x ^ (x >> _S27)) * _MUL2
    return x ^ (x >> _S31)


@_jit
def random_key(seed, seed2, counter):
    """The uint64 key of one draw: seeds as uint64, `counter` as int64."""
    k = splitmix64(seed)
    k = splitmix64(k ^ seed2)
    return splitmix64(k ^ np.uint64(counter))


@_jit
def uniform_bits(key, index):
    """A float64 in [0, 1) for uint64 `index` under `key`."""
    h = splitmix64(key ^ splitmix64(index))
    return np.float64(h >> _S11) * _TWO_M53


@_jit
def normal_pair(key, index):
    """A standard normal float64 (Box-Muller on two uniforms) for uint64 `index`."""
    u1 = uniform_bits(key, _TWO_U * index)
    u2 = uniform_bits(key, _TWO_U * index + _ONE_U)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


_ROUND_STRIDE = np.uint64(1 << 40)


@_jit
def truncated_normal(key, index):
    """A normal float64 with |z| < 2, redrawn (index + round * 2**40) for up to 63 rounds."""
    z = normal_pair(key, index)
    rnd = np.uint64(1)
    while abs(z) >= 2.0 and rnd < np.uint64(64):
        z = normal_pair(key, index + rnd * _ROUND_STRIDE)
        rnd += _ONE_U
    return z


# ----------------------------------------------------------------------------- streaming stores


@_jit
def stream_from(out, lo, hi):
    """Where a kernel's loop over ``[lo, hi)`` switches to non-temporal stores into `out`.

    The generated source writes ``[lo, start)`` and ``[start, hi)`` in two loops of the same
    body; `codegen.pyllvm` makes the second one stream (see its `stream_from`), numba streams
    nothing: both give the same values.
    """
    return hi


# ----------------------------------------------------------------------------- reduction combiners
# The only reassociating float ops of a kernel: LLVM fast-math flags are per instruction, so
# these inlined adds and multiplies let a reduction loop vectorise while every other float op
# of the kernel keeps IEEE order.

_reassoc = njit(fastmath={"reassoc"}, error_model="numpy", cache=False)


@_reassoc
def radd(a, b):
    return a + b


@_reassoc
def rmul(a, b):
    return a * b


# Extremes of a float reduction: the caller tracks NaN itself, so these may assume no NaN (and
# ignore the sign of zero). Written as llvm.maxnum/minnum with those flags, which LLVM's loop
# vectoriser takes as a min/max reduction; a compare-and-select, even with the same flags, stayed
# scalar (a 4096x4096 row max: 18 ms, 2.9 ms as maxnum, numpy's own 3.0 ms).


def _extreme(which: str):
    @intrinsic
    def extreme(typingctx, a, b):
        if not (a == b and a in (types.float32, types.float64)):
            return None

        def codegen(context, builder, sig, args):
            ty = args[0].type
            name = f"llvm.{which}.{'f32' if a == types.float32 else 'f64'}"
            fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ty, [ty, ty]), name)
            return builder.call(fn, args, fastmath=("nnan", "nsz"))

        return a(a, b), codegen

    return extreme


_maxnum, _minnum = _extreme("maxnum"), _extreme("minnum")


@_jit
def rmax(a, b):
    return _maxnum(a, b)


@_jit
def rmin(a, b):
    return _minnum(a, b)
