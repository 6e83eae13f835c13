"""Training-state snapshots: a state group's members encoded together, at one version (DESIGN 3).

Encoding happens on the executor's thread, because the state goes on changing right after; writing the
bytes can then happen anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.kinds import MODEL
from cardloop.store.codecs import CodecContext, codec_for_kind


@dataclass(frozen=True)
class EncodedState:
    """One member of a snapshot: the state's name and kind, the codec used and the bytes."""

    name: str
    kind: str
    codec: str
    extension: str
    data: bytes


@dataclass(frozen=True)
class Snapshot:
    """A group at one version, as left by the card at `position`."""

    group: str
    version: int
    position: int
    card_id: str
    cache_key: str
    members: tuple[EncodedState, ...]


def snapshot_group(plan: Plan, slots: list[Any], group: str, version: int, pc: PlannedCard) -> Snapshot:
    """Encode every member of `group` as it is now (right after card `pc`)."""
    root = plan.group_root(group)
    model = slots[root.slot] if root.kind == MODEL else None
    ctx = CodecContext(model=model)
    members = []
    for state in plan.group_members(group):
        if slots[state.slot] is None:  # made further down the script
            continue
        codec = codec_for_kind(state.kind)
        members.append(EncodedState(state.name, state.kind, codec.name, codec.extension,
                                    codec.encode(slots[state.slot], ctx)))
    return Snapshot(group, version, pc.position, pc.id, pc.cache_key, tuple(members))


def latest_versions(plan: Plan, upto: int) -> dict[str, tuple[int, PlannedCard]]:
    """For each group, the last version made by a card at or above `upto`, and that card."""
    latest: dict[str, tuple[int, PlannedCard]] = {}
    for pc in plan.cards[: upto + 1]:
        for group, version in pc.states_made.items():
            latest[group] = (version, pc)
    return latest
