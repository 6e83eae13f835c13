"""Codecs for tensor values: `tensor` (e.g. predictions), `batch` (X and y), `batches` (an epoch's batch list) and
`loss` (value only, no graph)."""

from __future__ import annotations

from typing import Any

import torch

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.store import safetensors_format
from cardloop.store.codec import Codec, CodecContext, json_number, load_device
from cardloop.batches import BatchList, RowBatches
from cardloop.values import Batch


def summarize_tensor(tensor: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and device; for non-empty real tensors also min, max, mean and std."""
    tensor = tensor.detach()
    summary: dict[str, Any] = {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "device": str(tensor.device),
    }
    if tensor.numel() and not tensor.is_complex():
        values = tensor.to(torch.float64)
        summary.update(
            min=json_number(values.min()),
            max=json_number(values.max()),
            mean=json_number(values.mean()),
            std=json_number(values.std()) if tensor.numel() > 1 else None,
        )
    return summary


class TensorCodec(Codec):
    """A tensor as safetensors; a tensor that required grad comes back detached."""

    name = "tensor-safetensors"
    kind = kinds.TENSOR
    extension = "safetensors"
    format = "cardloop.tensor/1"

    def encode(self, value: torch.Tensor, ctx: CodecContext) -> bytes:
        return safetensors_format.pack({"tensor": value}, {"format": self.format, "device": value.device.type})

    def decode(self, data: bytes, ctx: CodecContext) -> torch.Tensor:
        tensors, metadata = safetensors_format.unpack(data, self.format)
        return tensors["tensor"].to(load_device(ctx.device, metadata.get("device")))

    def summarize(self, value: torch.Tensor) -> dict[str, Any]:
        return summarize_tensor(value)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor)


class BatchCodec(Codec):
    """A `Batch` as safetensors with the tensors X and y."""

    name = "batch-safetensors"
    kind = kinds.BATCH
    extension = "safetensors"
    format = "cardloop.batch/1"

    def encode(self, value: Batch, ctx: CodecContext) -> bytes:
        return safetensors_format.pack({"X": value.X, "y": value.y},
                                       {"format": self.format, "device": value.X.device.type})

    def decode(self, data: bytes, ctx: CodecContext) -> Batch:
        tensors, metadata = safetensors_format.unpack(data, self.format)
        return Batch(tensors["X"], tensors["y"]).to(load_device(ctx.device, metadata.get("device")))

    def summarize(self, value: Batch) -> dict[str, Any]:
        return {"rows": int(value.X.shape[0]), "X": summarize_tensor(value.X), "y": summarize_tensor(value.y)}

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Batch)


class BatchesCodec(Codec):
    """A `BatchList` as safetensors: the epoch's X and y in its order, the order itself when shuffled, and the
    batch size, drop_last, epoch and column names as metadata. It decodes to an equal list."""

    name = "batches-safetensors"
    kind = kinds.BATCHES
    extension = "safetensors"
    format = "cardloop.batches/1"

    def encode(self, value: BatchList, ctx: CodecContext) -> bytes:
        rows = value.rows()
        tensors = {"X": rows.X, "y": rows.y} | ({} if rows.order is None else {"order": rows.order})
        return safetensors_format.pack(tensors, {
            "format": self.format, "batch_size": value.batch_size, "drop_last": value.drop_last,
            "epoch": value.epoch, "features": value.features, "targets": value.targets})

    def decode(self, data: bytes, ctx: CodecContext) -> BatchList:
        tensors, metadata = safetensors_format.unpack(data, self.format)
        rows = RowBatches(tensors["X"], tensors["y"], tensors.get("order"))
        try:
            return BatchList(lambda: rows, metadata["batch_size"], drop_last=metadata["drop_last"],
                             epoch=metadata["epoch"], features=metadata["features"], targets=metadata["targets"])
        except KeyError as missing:
            raise StoreError(f"artifact holds a batch list without its {missing}") from None

    def summarize(self, value: BatchList) -> dict[str, Any]:
        rows = value.rows()
        return {"batches": len(value), "batch_size": value.batch_size, "rows": value.num_rows,
                "drop_last": value.drop_last, "epoch": value.epoch, "shuffled": value.shuffled,
                "X": summarize_tensor(rows.X), "y": summarize_tensor(rows.y)}

    def accepts(self, value: Any) -> bool:
        return isinstance(value, BatchList)


class LossCodec(Codec):
    """The value of a loss, detached: its autograd graph is dropped and the metadata says so.

    A decoded loss does not require grad, so `training_backward` can refuse it instead of computing nothing.
    """

    name = "loss-safetensors"
    kind = kinds.LOSS
    extension = "safetensors"
    format = "cardloop.loss/1"

    def encode(self, value: torch.Tensor, ctx: CodecContext) -> bytes:
        metadata = {"format": self.format, "graph": "dropped", "requires_grad": bool(value.requires_grad),
                    "grad_fn": type(value.grad_fn).__name__ if value.grad_fn is not None else None,
                    "device": value.device.type}
        return safetensors_format.pack({"loss": value}, metadata)

    def decode(self, data: bytes, ctx: CodecContext) -> torch.Tensor:
        tensors, metadata = safetensors_format.unpack(data, self.format)
        return tensors["loss"].to(load_device(ctx.device, metadata.get("device")))

    def summarize(self, value: torch.Tensor) -> dict[str, Any]:
        summary = summarize_tensor(value)
        summary["graph"] = "live" if value.grad_fn is not None else "none"
        if value.numel() == 1:
            summary["value"] = json_number(value.detach())
        return summary
