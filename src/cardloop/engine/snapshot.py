"""Training-state snapshots: a state group's members encoded together, at one version (docs/design.md §3).

Encoding happens on the executor's thread, because the state goes on changing right after; writing the
bytes can then happen anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.kinds import MODEL, SCHEDULER
from cardloop.pipeline.blocks import SKIPPED
from cardloop.store.codecs import CodecContext, codec_for_kind


#: What the run records keep of a snapshot's member (EncodedState.record).
RECORDED_MEMBER = ("kind", "digest", "bound_to")


@dataclass(frozen=True)
class EncodedState:
    """One member of a snapshot: the state's name and kind, the codec used and the bytes; for a scheduler, the
    name of the member it is bound to (its optimizer), which loading decodes it over."""

    name: str
    kind: str
    codec: str
    extension: str
    data: bytes
    bound_to: str | None = None

    def record(self, digest: str) -> dict[str, str]:
        """The member as the run records keep it: {kind, digest} and, for a scheduler, bound_to."""
        found = {"kind": self.kind, "digest": digest}
        if self.bound_to is not None:
            found["bound_to"] = self.bound_to
        return found


@dataclass(frozen=True)
class Snapshot:
    """A group at one version, as left by the card at `position`."""

    group: str
    version: int
    position: int
    card_id: str
    cache_key: str
    members: tuple[EncodedState, ...]


RNG_MEMBER = "rng"


def encode_rng() -> bytes:
    """torch's global CPU (and CUDA) random state, so a resumed run draws the same numbers (dropout)."""
    import torch

    from cardloop.store import safetensors_format

    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    return safetensors_format.pack(tensors, {"format": "cardloop-rng/1"})


def decode_rng(data: bytes) -> dict[str, Any]:
    """The random states in `encode_rng`'s bytes, checked to be states torch can take (StoreError if not)."""
    import torch

    from cardloop.errors import StoreError
    from cardloop.store import safetensors_format

    tensors, _ = safetensors_format.unpack(data, "cardloop-rng/1")
    cpu = tensors.get("cpu")
    expected = torch.get_rng_state()
    if cpu is None or cpu.dtype != expected.dtype or cpu.shape != expected.shape:
        raise StoreError("the stored random state is not a CPU generator state of this torch")
    return tensors


def set_rng(tensors: dict[str, Any]) -> None:
    """Set torch's random states to those `decode_rng` gave."""
    import torch

    torch.set_rng_state(tensors["cpu"])
    cuda = [tensors[f"cuda{i}"] for i in range(len(tensors) - 1)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def snapshot_group(plan: Plan, slots: list[Any], group: str, version: int, pc: PlannedCard) -> Snapshot | None:
    """Encode every member of `group` as it is now (right after card `pc`), with the RNG state; None when
    the group is not live here (its cards were served from the store)."""
    root = plan.group_root(group)
    model = slots[root.slot] if root.kind == MODEL else None
    ctx = CodecContext(model=model)
    live = {state.name: slots[state.slot] for state in plan.group_members(group)}
    members = []
    for state in plan.group_members(group):
        value = live[state.name]
        if value is SKIPPED:  # a member a skipped card did not make: the version is not stored, so a card that
            return None  # needs it runs that card again (and skips it again)
        if value is None:  # made further down the script
            continue
        codec = codec_for_kind(state.kind)
        bound_to = _bound_optimizer(state.name, value, live) if state.kind == SCHEDULER else None
        encoded = codec.encode(value, ctx if bound_to is None else CodecContext(model=model,
                                                                                optimizer=live[bound_to]))
        members.append(EncodedState(state.name, state.kind, codec.name, codec.extension, encoded, bound_to))
    if not members:
        return None
    members.append(EncodedState(RNG_MEMBER, "rng", "rng-safetensors", "safetensors", encode_rng()))
    return Snapshot(group, version, pc.position, pc.id, pc.cache_key, tuple(members))


def _bound_optimizer(name: str, scheduler: Any, live: dict[str, Any]) -> str:
    """The member of the group that is the optimizer the scheduler acts on."""
    from cardloop.errors import StoreError

    found = next((member for member, value in live.items() if value is getattr(scheduler, "optimizer", None)), None)
    if found is None:
        raise StoreError(f"the scheduler '{name}' acts on an optimizer that is not in its training-state group, so "
                         "it cannot be stored; make it from an optimizer of the pipeline")
    return found


def latest_versions(plan: Plan, upto: int) -> dict[str, tuple[int, PlannedCard]]:
    """For each group, the last version made by a card at or above `upto`, and that card."""
    latest: dict[str, tuple[int, PlannedCard]] = {}
    for pc in plan.cards[: upto + 1]:
        for group, version in pc.states_made.items():
            latest[group] = (version, pc)
    return latest


def restore_into(live: Any, loaded: Any) -> None:
    """Make the live training-state object `live` what `loaded` (the same state, decoded from a snapshot) is,
    in place: the cards that hold `live` see the restored state. A model takes weights, buffers, gradients and
    which parameters are frozen; an optimizer or scheduler its state dict, and an optimizer its step count."""
    import torch

    from cardloop.values import OPTIMIZER_STEPS_ATTR

    live.load_state_dict(loaded.state_dict())
    if isinstance(live, torch.nn.Module):
        for mine, theirs in zip(live.parameters(), loaded.parameters()):
            mine.grad = None if theirs.grad is None else theirs.grad.detach().to(mine.device, copy=True)
            mine.requires_grad_(theirs.requires_grad)  # frozen or not, as training_freeze left it
    elif isinstance(live, torch.optim.Optimizer):
        setattr(live, OPTIMIZER_STEPS_ATTR, getattr(loaded, OPTIMIZER_STEPS_ATTR, 0))
