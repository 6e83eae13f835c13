"""JSON codecs: `scalar` (a number) and `info` (a dict); numpy and torch scalars become plain numbers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.store.codec import Codec, CodecContext, canonical_json, finite_json


def to_jsonable(value: Any, where: str = "value") -> Any:
    """The value with numpy/torch numbers and arrays made plain; anything JSON cannot hold is an error."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise StoreError(f"{where} has the key {key!r}: JSON keys must be strings")
        return {key: to_jsonable(item, f"{where}.{key}") for key, item in value.items()}
    raise StoreError(f"{where} is a {type(value).__name__}, which JSON cannot hold")


def _json_payload(format_name: str, value: Any) -> bytes:
    return canonical_json({"format": format_name, "value": value}).encode()


def _json_value(data: bytes, format_name: str) -> Any:
    payload = json.loads(data)
    if payload.get("format") != format_name:
        raise StoreError(f"artifact holds '{payload.get('format')}', not '{format_name}'")
    return payload["value"]


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, int, float, np.bool_, np.number)):
        return True
    return isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex()


class ScalarCodec(Codec):
    """A number (Python, numpy or a one-element tensor) as JSON; decodes to a Python number."""

    name = "scalar-json"
    kind = kinds.SCALAR
    extension = "json"
    format = "cardloop.scalar/1"

    def encode(self, value: Any, ctx: CodecContext) -> bytes:
        return _json_payload(self.format, self._plain(value))

    def decode(self, data: bytes, ctx: CodecContext) -> Any:
        return _json_value(data, self.format)

    def summarize(self, value: Any) -> dict[str, Any]:
        return {"value": self._plain(value)}

    def accepts(self, value: Any) -> bool:
        return not isinstance(value, torch.Tensor) and _is_number(value)

    @staticmethod
    def _plain(value: Any) -> bool | int | float:
        if not _is_number(value):
            raise StoreError(f"a scalar must be a number, not a {type(value).__name__}")
        return value.item() if isinstance(value, (np.generic, torch.Tensor)) else value


class InfoCodec(Codec):
    """A JSON-able dict as JSON."""

    name = "info-json"
    kind = kinds.INFO
    extension = "json"
    format = "cardloop.info/1"

    def encode(self, value: dict[str, Any], ctx: CodecContext) -> bytes:
        return _json_payload(self.format, self.summarize(value))

    def decode(self, data: bytes, ctx: CodecContext) -> dict[str, Any]:
        return _json_value(data, self.format)

    def summarize(self, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise StoreError(f"an info must be a dict, not a {type(value).__name__}")
        return to_jsonable(value, "info")

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)


#: the kinds whose collected lists (a loop block's `list:<kind>` outputs) are stored as JSON
JSON_ITEM_KINDS = frozenset({kinds.SCALAR, kinds.INFO})


class ListCodec(Codec):
    """A loop block's collected output (kind `list:scalar`, `list:list:info`, ...) as JSON; an iteration in which
    the card was skipped is null, a NaN or infinite number its name as a string ("NaN", "Infinity")."""

    name = "list-json"
    extension = "json"
    format = "cardloop.list/1"

    def __init__(self, kind: str = "list:scalar"):
        self.kind = kind

    def encode(self, value: list, ctx: CodecContext) -> bytes:
        return _json_payload(self.format, self.summarize(value))

    def decode(self, data: bytes, ctx: CodecContext) -> list:
        return _numbers(_json_value(data, self.format))

    def summarize(self, value: list) -> Any:
        if not isinstance(value, list):
            raise StoreError(f"a collected output must be a list, not a {type(value).__name__}")
        return finite_json(to_jsonable(value, "list"))


_NAMED = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _numbers(value: Any) -> Any:
    if isinstance(value, str) and value in _NAMED:
        return _NAMED[value]
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value
