"""What the store already holds for a plan (by cache key), and turning it back into live values."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.resolve import StoredState, StoredValue
from cardloop.engine.persist import SUMMARIZED_KINDS
from cardloop.store.artifacts import ArtifactStore, undecodable_as
from cardloop.store.records import RunRecords


class StoreAvailability:
    """Answers the scheduler from earlier runs' records; every artifact it offers passed its hash check and
    decodes (a snapshot as a whole: its optimizer into its model), so that a run never counts on a stored value
    it cannot load, and a cached run never ends on a final state that cannot be loaded. One that does not is
    a cache miss, recomputed, as a missing one is.

    One query reads, for every card of the plan (or of `cards`), the recorded outputs of the newest execution
    with its cache key; they are decoded when first asked for. A newer execution may have stored less than an
    older one (a card run alone under persist 'checkpoint'), so a value that the newest lacks is looked for
    in the older executions with the same key, and a state in the older snapshots.
    """

    def __init__(self, plan: Plan, records: RunRecords, artifacts: ArtifactStore,
                 cards: Iterable[PlannedCard] | None = None):
        self.records, self.artifacts = records, artifacts
        self._keys = [pc.cache_key for pc in (plan.cards if cards is None else cards) if pc.card_type.deterministic]
        self._newest = records.newest_outputs(self._keys)
        self._decoded: dict[str, dict[str, Any]] = {}
        self._older: dict[str, list[dict[str, Any]]] = {}
        self._verified: dict[Any, bool] = {}  # by digest, or by a snapshot's digests: whether it decodes

    def prior(self, pc: PlannedCard) -> dict[str, Any] | None:
        """The recorded outputs of the newest execution of the card's cache key, or None if there is none."""
        key = pc.cache_key
        found = self._decoded.get(key)
        if found is None and pc.card_type.deterministic:
            text = self._newest.get(key)
            if text is not None:
                found = self._decoded[key] = json.loads(text)
        return found

    def value(self, pc: PlannedCard, port: str) -> StoredValue | None:
        prior = self.prior(pc)
        if prior is None:
            return None
        found = self._stored_value(prior.get(port))
        if found is None:
            for older in self._all_outputs(pc.cache_key):
                found = self._stored_value(older.get(port))
                if found is not None:
                    break
        return found

    def state(self, group: str, version: int, maker: PlannedCard) -> StoredState | None:
        if not maker.card_type.deterministic:
            return None
        for snapshot in self.records.snapshots_for_key(maker.cache_key):
            if snapshot.group == group and self.decodes(snapshot.members):
                return StoredState(snapshot.members)
        return None

    def decodes(self, members: dict[str, dict[str, str]]) -> bool:
        """Whether every member of a snapshot is stored, passes its hash check and decodes."""
        key = frozenset((name, m["digest"]) for name, m in members.items())
        if key not in self._verified:
            self._verified[key] = _loads(lambda: self._checker().check_state(StoredState(members)))
        return self._verified[key]

    def _stored_value(self, output: dict[str, Any] | None) -> StoredValue | None:
        if not output:
            return None
        if output.get("digest"):
            stored = StoredValue(output["kind"], output["digest"])
            return stored if self._ok(stored) else None
        if output["kind"] in SUMMARIZED_KINDS and "summary" in output:  # the whole value; null: the value None
            return StoredValue(output["kind"], None, output["summary"])
        return None

    def _all_outputs(self, key: str) -> list[dict[str, Any]]:
        if key not in self._older:
            self._older[key] = [json.loads(text) for text in self.records.outputs_for_key(key)]
        return self._older[key]

    def _ok(self, stored: StoredValue) -> bool:
        if stored.digest not in self._verified:
            self._verified[stored.digest] = _loads(lambda: self._checker().value(stored))
        return self._verified[stored.digest]

    def _checker(self) -> StoreLoader:
        return StoreLoader(self.artifacts, device="cpu")


def _loads(load: Callable[[], Any]) -> bool:
    """Whether `load` decodes what it reads, leaving torch's random state as it was (rebuilding a model draws
    its initial weights)."""
    import torch

    from cardloop.errors import StoreError

    with torch.random.fork_rng(devices=[]):
        try:
            load()
        except StoreError:  # missing, corrupt or undecodable
            return False
    return True


class NothingStored:
    """The scheduler's view with caching off."""

    def prior(self, pc: PlannedCard) -> None:
        return None

    def value(self, pc: PlannedCard, port: str) -> None:
        return None

    def state(self, group: str, version: int, maker: PlannedCard) -> None:
        return None


class StoreLoader:
    """Decodes stored values and state snapshots (models onto `device`, optimizers bound to them). By default a
    model or tensor goes back onto the kind of device it was stored from (CPU where this machine has none)."""

    def __init__(self, artifacts: ArtifactStore, device: str | None = None):
        self.artifacts, self.device = artifacts, device

    def value(self, stored: StoredValue) -> Any:
        if stored.digest is None:
            return stored.summary
        from cardloop.store.codecs import CodecContext

        return self.artifacts.load((stored.digest, stored.kind), CodecContext(device=self._device()))

    def state(self, stored: StoredState, restore_random: bool = True) -> dict[str, Any]:
        """Every member of a snapshot as a live object (docs/design.md §3 load order); `restore_random` also sets
        torch's RNG to the snapshot's, as a resumed run needs."""
        from cardloop.engine.snapshot import RNG_MEMBER
        from cardloop.store.outputs import load_members

        live = load_members(self.artifacts, stored.members, [name for name in stored.members if name != RNG_MEMBER],
                            self._device())
        if restore_random and RNG_MEMBER in stored.members:
            self.restore_rng(stored.members[RNG_MEMBER]["digest"])
        return live

    def check_state(self, stored: StoredState) -> None:
        """Decode every member of a snapshot, its RNG state included, and keep none: raises StoreError
        (ArtifactUndecodable for bytes that pass their hash check but do not decode) if one does not."""
        from cardloop.engine.snapshot import RNG_MEMBER

        self.state(stored, restore_random=False)
        if RNG_MEMBER in stored.members:
            self._rng(stored.members[RNG_MEMBER]["digest"])

    def restore_rng(self, digest: str) -> None:
        """Set torch's random state to the stored one."""
        from cardloop.engine.snapshot import set_rng

        set_rng(self._rng(digest))

    def _rng(self, digest: str) -> dict[str, Any]:
        from cardloop.engine.snapshot import decode_rng

        data = self.artifacts.get(digest)
        return undecodable_as(digest, "rng-safetensors", lambda: decode_rng(data))

    def _device(self) -> str:
        if self.device is None:
            from cardloop.store.codec import AS_STORED

            return AS_STORED
        return self.device
