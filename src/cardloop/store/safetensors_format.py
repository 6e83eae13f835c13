"""Safetensors bytes with one JSON metadata entry that says what the file holds.

Safetensors keeps metadata as a string map whose order is not fixed; keeping all metadata in one entry of
canonical JSON makes the bytes depend on the content only.
"""

from __future__ import annotations

import struct
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from cardloop.errors import StoreError
from cardloop.store.codec import canonical_json
from cardloop.store.stored_summaries import METADATA_KEY, read_header



def cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU copy that shares memory with nothing (safetensors refuses shared memory)."""
    return tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)


def pack(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> bytes:
    """Tensors (copied to CPU) and JSON metadata as safetensors bytes."""
    return save_tensors({k: cpu_copy(t) for k, t in tensors.items()}, metadata={METADATA_KEY: canonical_json(metadata)})


def unpack(data: bytes, expected_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (on CPU) and metadata from `pack`'s bytes; refuses bytes that hold another format."""
    metadata = read_metadata(data)
    found = metadata.get("format")
    if found != expected_format:
        raise StoreError(f"artifact holds '{found}', not '{expected_format}'")
    # fresh tensors from torch's (aligned) allocator: a matmul's bits can depend on its inputs' addresses
    return {name: tensor.clone() for name, tensor in load_tensors(data).items()}, metadata


def read_metadata(data: bytes) -> dict[str, Any]:
    """The cardloop metadata of safetensors bytes, read from the header alone."""
    try:
        return read_header(data)[1]
    except (struct.error, ValueError, KeyError, TypeError) as error:
        raise StoreError(f"artifact is not a cardloop safetensors file ({error})") from error
