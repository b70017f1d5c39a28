"""Integer and float arithmetic on two numbers, the operation picked from a combo.

ComfyUI has no core node for this; these are Loom's (IntMath, FloatMath).
Every failure (division by zero, a result too large) is an error that says
which operation failed and why.
"""

from __future__ import annotations

import math
import operator
from typing import Callable

from engine.declare import Combo, Float, Int, node

CATEGORY = "utils/math"

#: Operation name → function; both nodes share these, the int node dividing with floor.
_OPERATIONS: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "modulo": operator.mod,
    "power": operator.pow,
    "minimum": min,
    "maximum": max,
}
_INT_OPERATIONS = {**_OPERATIONS, "divide": operator.floordiv}
OPERATIONS = tuple(_OPERATIONS)

#: Results of IntMath's power are capped at this many bits: a prompt must not
#: be able to make the worker compute 10**10**10.
_MAX_INT_BITS = 4096


def _compute(node_name: str, operation: str, a, b, table=_OPERATIONS):
    if operation not in table:
        raise ValueError(f"{node_name}: unknown operation {operation!r}; use one of {', '.join(OPERATIONS)}")
    if operation in ("divide", "modulo") and b == 0:
        raise ValueError(f"{node_name}: cannot {operation} {a} by zero")
    try:
        return table[operation](a, b)
    except OverflowError:
        raise ValueError(f"{node_name}: {a} {operation} {b} is too large to compute") from None
    except ZeroDivisionError:
        raise ValueError(f"{node_name}: {a} {operation} {b} divides by zero") from None


@node(category=CATEGORY, display_name="Int Math")
def IntMath(
    a: int = Int(0, min=-(2**63), max=2**63 - 1),
    b: int = Int(0, min=-(2**63), max=2**63 - 1),
    operation: str = Combo(options=OPERATIONS, default="add"),
) -> int:
    """Combines two integers; `divide` rounds down (floor), `modulo` takes the sign of b."""
    if operation == "power":
        if b < 0:
            raise ValueError(f"IntMath: power needs a non-negative exponent, got {b}")
        if abs(a) > 1 and b * abs(a).bit_length() > _MAX_INT_BITS:
            raise ValueError(f"IntMath: {a} to the power {b} is too large to compute")
    return int(_compute("IntMath", operation, a, b, _INT_OPERATIONS))


@node(category=CATEGORY, display_name="Float Math")
def FloatMath(
    a: float = Float(0.0, min=-1e308, max=1e308, step=0.01),
    b: float = Float(0.0, min=-1e308, max=1e308, step=0.01),
    operation: str = Combo(options=OPERATIONS, default="add"),
) -> float:
    """Combines two floats."""
    result = _compute("FloatMath", operation, float(a), float(b))
    if isinstance(result, complex):
        raise ValueError(f"FloatMath: {a} to the power {b} has no real value")
    if math.isinf(result) and not (math.isinf(a) or math.isinf(b)):
        raise ValueError(f"FloatMath: {a} {operation} {b} is too large to compute")
    return result
