"""JSON a browser can parse. JSON has no NaN or infinities (a diverged loss, the statistics of a tensor that holds
them), and Python writes them as bare `NaN` and `Infinity`, which JSON.parse refuses (and the API's own
serializer turns into null, losing which one it was). So the server sends each as the string that JavaScript's
`Number()` reads back: "NaN", "Infinity" or "-Infinity"."""

from __future__ import annotations

from cardloop.store.codec import finite_json

__all__ = ["finite_json"]
