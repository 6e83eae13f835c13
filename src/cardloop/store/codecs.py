"""The codec registry: one codec per port kind, built-ins registered here, custom kinds via `register_codec`."""

from __future__ import annotations

from typing import Any

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.store.codec import Codec, CodecContext
from cardloop.store.json_codecs import JSON_ITEM_KINDS, InfoCodec, ListCodec, ScalarCodec
from cardloop.store.model_codec import ModelCodec
from cardloop.store.optimizer_codec import OptimizerCodec
from cardloop.store.scheduler_codec import SchedulerCodec
from cardloop.store.table_codec import DataFrameCodec
from cardloop.store.tensor_codecs import BatchCodec, BatchesCodec, LossCodec, TensorCodec

__all__ = ["Codec", "CodecContext", "codec_for_kind", "codec_for_value", "codec_named", "has_codec",
           "register_codec"]

_by_kind: dict[str, Codec] = {}


def register_codec(codec: Codec) -> None:
    """Make `codec` the codec of its kind (a custom kind, or a replacement for a built-in one)."""
    if codec.kind == kinds.ANY:
        raise StoreError("kind 'any' has no codec of its own: values on such ports use the codec of their type")
    _by_kind[codec.kind] = codec


def codec_for_kind(kind: str, value: Any = None) -> Codec:
    """The codec of a port kind; for kind `any`, the codec of `value`'s type."""
    if kind == kinds.ANY:
        return codec_for_value(value)
    if kind not in _by_kind and _json_list(kind):
        return ListCodec(kind)
    if kind not in _by_kind:
        raise StoreError(f"no codec is registered for kind '{kind}' "
                         "(register one with cardloop.store.codecs.register_codec)")
    return _by_kind[kind]


def has_codec(kind: str) -> bool:
    """Whether values of port kind `kind` can be stored (for `any`: it depends on each value's type)."""
    return kind == kinds.ANY or kind in _by_kind or _json_list(kind)


def _json_list(kind: str) -> bool:
    """Whether `kind` is a loop block's collected list (`list:...`) of numbers or infos, stored as JSON."""
    item = kind
    while item.startswith("list:"):
        item = item[5:]
    return item != kind and item in JSON_ITEM_KINDS


def codec_for_value(value: Any) -> Codec:
    """The codec for a value sent through a port of kind `any`; codecs registered last are asked first."""
    for codec in reversed(_by_kind.values()):
        if codec.accepts(value):
            return codec
    raise StoreError(f"no codec can store a {type(value).__name__} sent through a port of kind 'any' (one can "
                     f"store {_values_by_type()}, or a type whose codec is registered with "
                     "cardloop.store.codecs.register_codec)")


def _values_by_type() -> str:
    """What the codecs that choose values by type accept, in words: the kinds' descriptions."""
    described = kinds.known_kinds()
    accepted = [described.get(codec.kind, f"a '{codec.kind}'") for codec in _by_kind.values()
                if type(codec).accepts is not Codec.accepts]
    return ", ".join(accepted[:-1]) + f" or {accepted[-1]}"


def codec_named(name: str) -> Codec:
    """The registered codec called `name` (as recorded in an ArtifactRef)."""
    for codec in _by_kind.values():
        if codec.name == name:
            return codec
    if name == ListCodec.name:
        return ListCodec()
    raise StoreError(f"no codec named '{name}' is registered")


for _codec in (DataFrameCodec(), BatchCodec(), BatchesCodec(), TensorCodec(), LossCodec(), ModelCodec(),
               OptimizerCodec(), SchedulerCodec(), ScalarCodec(), InfoCodec()):
    register_codec(_codec)
