"""What the store already holds for a plan (by cache key), and turning it back into live values."""

from __future__ import annotations

from typing import Any

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.resolve import StoredState, StoredValue
from cardloop.kinds import INFO, MODEL, SCALAR
from cardloop.store.artifacts import ArtifactStore
from cardloop.store.records import RunRecords

SUMMARIZED_KINDS = (INFO, SCALAR)


class StoreAvailability:
    """Answers the scheduler from earlier runs' records; every artifact it offers passed its hash check."""

    def __init__(self, plan: Plan, records: RunRecords, artifacts: ArtifactStore):
        self.records, self.artifacts = records, artifacts
        self.priors = records.executions_by_keys(pc.cache_key for pc in plan.cards if pc.card_type.deterministic)
        self._verified: dict[str, bool] = {}

    def prior(self, pc: PlannedCard):
        return self.priors.get(pc.cache_key) if pc.card_type.deterministic else None

    def value(self, pc: PlannedCard, port: str) -> StoredValue | None:
        prior = self.prior(pc)
        output = prior.outputs.get(port) if prior else None
        if not output:
            return None
        if output.get("digest"):
            return StoredValue(output["kind"], output["digest"]) if self._ok(output["digest"]) else None
        if output["kind"] in SUMMARIZED_KINDS and output.get("summary") is not None:
            return StoredValue(output["kind"], None, output["summary"])
        return None

    def state(self, group: str, version: int, maker: PlannedCard) -> StoredState | None:
        if not maker.card_type.deterministic:
            return None
        snapshot = self.records.latest_state_snapshot(maker.cache_key, group)
        if snapshot is None or not all(self._ok(m["digest"]) for m in snapshot.members.values()):
            return None
        return StoredState(snapshot.members)

    def _ok(self, digest: str) -> bool:
        if digest not in self._verified:
            self._verified[digest] = self.artifacts.verify(digest)
        return self._verified[digest]


class NothingStored:
    """The scheduler's view with caching off."""

    def prior(self, pc: PlannedCard) -> None:
        return None

    def value(self, pc: PlannedCard, port: str) -> None:
        return None

    def state(self, group: str, version: int, maker: PlannedCard) -> None:
        return None


class StoreLoader:
    """Decodes stored values and state snapshots (models onto `device`, optimizers bound to them)."""

    def __init__(self, artifacts: ArtifactStore, device: str | None = None):
        self.artifacts, self.device = artifacts, device

    def value(self, stored: StoredValue) -> Any:
        if stored.digest is None:
            return stored.summary
        from cardloop.store.codecs import CodecContext

        return self.artifacts.load((stored.digest, stored.kind), CodecContext(device=self._device()))

    def state(self, stored: StoredState, restore_random: bool = True) -> dict[str, Any]:
        """Every member of a snapshot as a live object (DESIGN 3 load order); `restore_random` also sets
        torch's RNG to the snapshot's, as a resumed run needs."""
        from cardloop.engine.snapshot import RNG_MEMBER, restore_rng
        from cardloop.store.codecs import CodecContext

        live: dict[str, Any] = {}
        model = None
        for name, member in stored.members.items():
            if member["kind"] == MODEL:
                model = live[name] = self.artifacts.load((member["digest"], MODEL), CodecContext(device=self._device()))
        for name, member in stored.members.items():
            if name == RNG_MEMBER:
                if restore_random:
                    restore_rng(self.artifacts.get(member["digest"]))
            elif member["kind"] != MODEL:
                live[name] = self.artifacts.load((member["digest"], member["kind"]),
                                                 CodecContext(model=model, device=self._device()))
        return live

    def _device(self) -> str:
        if self.device is None:
            import torch

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        return self.device
