"""What a codec is: how values of one port kind become bytes and back, and what `cardloop show` says of them."""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CodecContext:
    """What a codec needs beyond the value or the bytes.

    `model` is the live module an optimizer is bound to (needed to encode and decode an optimizer);
    `optimizer` the live optimizer a scheduler is bound to (needed to decode a scheduler, with its model);
    `device` is where decoded tensors and models are put: a device, or AS_STORED.
    """

    model: Any = None
    device: Any = "cpu"
    optimizer: Any = None


#: A CodecContext device: back onto the kind of device the value was on when it was stored (docs/design.md §3:
#: models go back to the card's device), or onto the CPU where this machine has no such device.
AS_STORED = "as-stored"


def load_device(requested: Any, stored: str | None) -> Any:
    """Where to put a decoded value: the requested device, or for AS_STORED the stored device type (`cuda`,
    `cpu`; None for artifacts written before it was recorded, which were always written from the CPU)."""
    if requested != AS_STORED:
        return requested
    if stored and stored != "cpu":
        import torch

        backend = getattr(torch, stored, None)
        if backend is not None and hasattr(backend, "is_available") and backend.is_available():
            return stored
    return "cpu"


class Codec(ABC):
    """Encodes and decodes the values of one port kind; `summarize` gives a small JSON-able description."""

    name: str
    kind: str
    extension: str

    @abstractmethod
    def encode(self, value: Any, ctx: CodecContext) -> bytes:
        """The value as bytes; equal values give equal bytes, so equal content gets one hash."""

    @abstractmethod
    def decode(self, data: bytes, ctx: CodecContext) -> Any:
        """The value back from bytes made by `encode`."""

    @abstractmethod
    def summarize(self, value: Any) -> dict[str, Any]:
        """A small JSON-able description of the value, for `cardloop show` and the editor."""

    def summarize_stored(self, data: bytes, ctx: CodecContext) -> dict[str, Any]:
        """`summarize` of the value in `data`, for `cardloop show` and the editor's previews; a codec overrides it
        where its bytes say enough without decoding."""
        return self.summarize(self.decode(data, ctx))

    def accepts(self, value: Any) -> bool:
        """Whether a value sent through a port of kind `any` is one of this codec's."""
        return False


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces, so that equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def json_number(value: Any) -> float | str:
    """A float for JSON; NaN and infinities become the strings 'nan', 'inf', '-inf'."""
    number = float(value)
    return number if math.isfinite(number) else str(number)


def finite_json(value: Any) -> Any:
    """`value` (dicts, lists and tuples of plain values) with every non-finite float as the string JavaScript's
    `Number()` reads back ("NaN", "Infinity", "-Infinity"): JSON has none of them, and JSON.parse refuses Python's
    bare `NaN`. The API sends such values this way (server/jsonsafe.py), and a collected list is stored so."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value
