"""Summaries of a stored model and optimizer read from their safetensors bytes (with NumPy), without torch: what
`cardloop show RUN CARD` and the editor's previews show of training state, at the cost of reading a file rather
than importing torch (seconds) and building the optimizer (which imports torch._dynamo: seconds more)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from cardloop.store.codec import json_number

STATE_PREFIX = "state."
GRAD_PREFIX = "grad."
TENSOR_TAG = "__tensor__"
TUPLE_TAG = "__tuple__"
METADATA_KEY = "cardloop"
MODEL_CODEC, OPTIMIZER_CODEC = "model-safetensors", "optimizer-safetensors"  # the codecs whose bytes are read here
SCHEDULER_CODEC = "scheduler-safetensors"
_WIDTHS = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_NUMPY_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
                 "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def summarize_model_bytes(data: bytes) -> dict[str, Any] | None:
    """The model codec's summary of the model stored in `data`, or None where the bytes alone cannot say it (a
    model stored before its parameter names were recorded, or a dtype NumPy lacks, such as bfloat16): then the
    model is decoded and summarized as it is."""
    import numpy as np

    header, metadata, start = read_header(data)
    _check_layout(header, len(data) - start)
    names = metadata.get("parameters")
    entries = [header.get(STATE_PREFIX + name) for name in names or ()]
    if names is None or any(e is None or e["dtype"] not in _NUMPY_DTYPES for e in entries):
        return None

    def norm(entry: dict[str, Any]) -> float | str:
        values = np.frombuffer(data, dtype=_NUMPY_DTYPES[entry["dtype"]], count=_numel(entry["shape"]),
                               offset=start + entry["data_offsets"][0])
        return json_number(np.sqrt(np.sum(np.square(values.astype(np.float64)))))

    frozen = set(metadata["frozen"])
    tensors = {}
    for name, entry in zip(names, entries):
        grad = header.get(GRAD_PREFIX + name)
        tensors[name] = {"shape": entry["shape"], "dtype": _NUMPY_DTYPES[entry["dtype"]], "norm": norm(entry),
                         "grad_norm": norm(grad) if grad is not None else None}
    counts = {name: _numel(entry["shape"]) for name, entry in zip(names, entries)}
    return {
        "architecture": metadata.get("architecture"),
        "parameters": sum(counts.values()),
        "trainable": sum(count for name, count in counts.items() if name not in frozen),
        "training": "" not in metadata["eval_modules"],
        "has_gradients": any(GRAD_PREFIX + name in header for name in names),
        "tensors": tensors,
    }


def summarize_optimizer_bytes(data: bytes,
                              tensor_value: Callable[[str], Any] | None = None) -> dict[str, Any] | None:
    """The optimizer codec's summary of the optimizer stored in `data`. A hyperparameter held as a tensor of the
    file is shown as `tensor_value(name)` gives it (the codec reads it with torch); without that, None."""
    _, metadata, _ = read_header(data)
    try:
        groups = [{"parameters": len(g["params"]), **_plain(g["hyperparameters"], tensor_value)}
                  for g in metadata["groups"]]
    except _HoldsTensor:
        return None
    return {"type": metadata["type"], "groups": groups, "parameters_with_state": len(metadata["state"])}


def summarize_scheduler_bytes(data: bytes,
                              tensor_value: Callable[[str], Any] | None = None) -> dict[str, Any] | None:
    """The scheduler codec's summary of the scheduler stored in `data`: its type, learning rates after its last
    step, step count and recipe (a learning rate held as a tensor of the file as `tensor_value` gives it)."""
    _, metadata, _ = read_header(data)
    state = metadata["state"]
    try:
        lr = _plain(state.get("_last_lr"), tensor_value)
    except _HoldsTensor:
        return None
    return {"type": metadata["type"], "lr": lr, "last_epoch": state.get("last_epoch"), "recipe": metadata["recipe"]}


def read_header(data: bytes) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Safetensors bytes' header (tensor name to dtype, shape and offsets), the cardloop metadata kept in it, and
    where the tensors' data starts."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    return header, json.loads(header.pop("__metadata__")[METADATA_KEY]), 8 + length


def _check_layout(header: dict[str, Any], size: int) -> None:
    """ValueError unless every tensor's bytes lie inside the `size` bytes of data and fit its dtype and shape, as
    safetensors checks when it loads them."""
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        width = _WIDTHS.get(entry["dtype"])
        if not 0 <= begin <= end <= size or width is None or end - begin != width * _numel(entry["shape"]):
            raise ValueError(f"invalid shape, data type, or offset for tensor '{name}'")


class _HoldsTensor(Exception):
    """A stored value refers to a tensor of the file."""


def _plain(value: Any, tensor_value: Callable[[str], Any] | None) -> Any:
    """A value the optimizer codec packed (tuples and tensors tagged), as its summary shows it: tuples as lists."""
    if isinstance(value, list):
        return [_plain(item, tensor_value) for item in value]
    if isinstance(value, dict):
        if set(value) == {TENSOR_TAG}:
            if tensor_value is None:
                raise _HoldsTensor
            return tensor_value(value[TENSOR_TAG])
        if set(value) == {TUPLE_TAG}:
            return [_plain(item, tensor_value) for item in value[TUPLE_TAG]]
        return {key: _plain(item, tensor_value) for key, item in value.items()}
    return value


def _numel(shape: list[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


#: The summaries above by port kind, with the name of the codec whose bytes they read.
BYTE_SUMMARIES = {"model": (MODEL_CODEC, summarize_model_bytes),
                  "optimizer": (OPTIMIZER_CODEC, summarize_optimizer_bytes),
                  "scheduler": (SCHEDULER_CODEC, summarize_scheduler_bytes)}
