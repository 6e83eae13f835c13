"""JSON a browser can parse. JSON has no NaN or infinities (a diverged loss, the statistics of a tensor that holds
them), and Python writes them as bare `NaN` and `Infinity`, which JSON.parse refuses (and the API's own
serializer turns into null, losing which one it was). So the server sends each as the string that JavaScript's
`Number()` reads back: "NaN", "Infinity" or "-Infinity"."""

from __future__ import annotations

import math
from typing import Any


def finite_json(value: Any) -> Any:
    """`value` (dicts, lists and tuples of plain values) with every non-finite float as its string."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value
