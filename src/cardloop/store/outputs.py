"""Reading a run's stored outputs back as live values: values by their artifact, training state from the
state snapshot that holds the version the card made."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardloop.errors import ArtifactCorrupt, StoreError
from cardloop.kinds import INFO, MODEL, SCALAR, STATE_KINDS
from cardloop.store.records import existing_records
from cardloop.store.record_types import StateSnapshot
from cardloop.store.root import default_store_root


SUMMARIZED_KINDS = (INFO, SCALAR)  # recorded whole in the run records


class RunOutputs:
    """The stored outputs of one run in one store."""

    def __init__(self, run_id: str, store: str | Path | None = None):
        self.root = Path(store) if store is not None else default_store_root()
        self.records = existing_records(self.root)
        self.run = self.records.get_run(run_id)

    def ports(self, card_id: str) -> dict[str, dict[str, Any]]:
        """The recorded outputs of a card: kind, digest (when stored), summary or state name."""
        execution = self.records.card_execution(self.run.run_id, card_id)
        if execution is None:
            ids = [e.card_id for e in self.records.card_executions(self.run.run_id)]
            close = difflib.get_close_matches(card_id, ids, n=3)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f"its cards run from '{ids[0]}' to '{ids[-1]}'" if ids else "it ran no card"
            raise StoreError(f"run {self.run.run_id} has no card '{card_id}'; {hint}")
        return execution.outputs or {}

    def load(self, card_id: str, port: str, device: str = "cpu") -> Any:
        """The value of output `port` of `card_id` as the run left it (a model on `device`). A stored artifact
        that fails its hash check or does not decode is an ArtifactCorrupt naming the card and the port."""
        return self._named(card_id, port, lambda: self._load(card_id, port, device))

    def _named(self, card_id: str, port: str, read: Callable[[], Any]) -> Any:
        """What `read` returns; an artifact that fails its hash check or does not decode is an ArtifactCorrupt
        (or ArtifactUndecodable) naming the run, the card and the port."""
        try:
            return read()
        except ArtifactCorrupt as error:
            raise type(error)(f"output '{port}' of card '{card_id}' in run {self.run.run_id} cannot be loaded: "
                              f"{error}") from error

    def _load(self, card_id: str, port: str, device: str) -> Any:
        from cardloop.store.artifacts import ArtifactStore
        from cardloop.store.codecs import CodecContext

        outputs = self.ports(card_id)
        if port not in outputs:
            raise StoreError(f"card '{card_id}' has no output '{port}'; its outputs: {', '.join(outputs)}")
        output = outputs[port]
        if output["kind"] in STATE_KINDS and output.get("state"):
            return self._load_state(card_id, output["state"], device)
        if not output.get("digest") and output["kind"] in SUMMARIZED_KINDS and "summary" in output:
            return output["summary"]  # the whole value (null: the card's output was None)
        if not output.get("digest"):
            raise StoreError(f"output '{port}' of card '{card_id}' was not stored under persist policy "
                             f"'{self.run.persist}'; run again with --persist all to keep every output")
        return ArtifactStore(self.root).load((output["digest"], output["kind"]), CodecContext(device=device))

    def summary(self, card_id: str, port: str) -> dict[str, Any] | None:
        """A summary of output `port` of `card_id` read from what the run stored (None when it stored nothing
        for it): what `cardloop show RUN CARD` and the editor's previews show. An optimizer is summarized from its
        bytes, without loading its model or building it, and a model too, without torch where its bytes say enough."""
        output = self.ports(card_id)[port]
        if output["kind"] in STATE_KINDS and output.get("state"):
            snapshot = self.snapshot_of(card_id, output["state"])
            member = snapshot.members.get(output["state"]) if snapshot is not None else None
            digest = member["digest"] if member else None
        else:
            digest = output.get("digest")
        if not digest:
            return None
        from cardloop.store.artifacts import ArtifactStore, undecodable_as

        data = self._named(card_id, port, lambda: ArtifactStore(self.root).get(digest))
        from cardloop.store.stored_summaries import BYTE_SUMMARIES

        if output["kind"] in BYTE_SUMMARIES:  # training state, read from its bytes: no torch to import
            codec_name, summarize = BYTE_SUMMARIES[output["kind"]]
            found = self._named(card_id, port, lambda: undecodable_as(digest, codec_name, lambda: summarize(data)))
            if found is not None:
                return found
        from cardloop.store.codecs import CodecContext, codec_for_kind

        codec = codec_for_kind(output["kind"])
        return self._named(card_id, port, lambda: undecodable_as(
            digest, codec.name, lambda: codec.summarize_stored(data, CodecContext())))

    def snapshot_of(self, card_id: str, state: str) -> StateSnapshot | None:
        """The snapshot of the state version that `card_id` made, if the run kept one."""
        for snapshot in self.records.state_snapshots(self.run.run_id):
            if snapshot.card_id == card_id and state in snapshot.members:
                return snapshot
        execution = self.records.card_execution(self.run.run_id, card_id)
        if execution is not None and execution.cache_key:  # served from an earlier run: its snapshot
            for snapshot in self.records.snapshots_for_key(execution.cache_key):
                if state in snapshot.members:
                    return snapshot
        return None

    def _load_state(self, card_id: str, state: str, device: str) -> Any:
        from cardloop.store.artifacts import ArtifactStore

        snapshot = self.snapshot_of(card_id, state)
        if snapshot is None:
            raise StoreError(f"the state '{state}' as card '{card_id}' left it was not stored under persist policy "
                             f"'{self.run.persist}' (only checkpoints and the final state are); "
                             "run again with --persist all to keep every version")
        if state not in snapshot.members:
            raise StoreError(f"the snapshot of card '{card_id}' holds no state '{state}'")
        return load_members(ArtifactStore(self.root), snapshot.members, [state], device)[state]


def load_members(artifacts: Any, members: dict[str, dict[str, str]], names: list[str], device: Any) -> dict[str, Any]:
    """The members `names` of a state snapshot as live objects, each decoded over what it is bound to, which is
    decoded first: an optimizer over the group's model, a scheduler over its optimizer (its `bound_to`) too. The
    result holds those too, one object each, so a scheduler acts on the optimizer given beside it."""
    from cardloop.store.codecs import CodecContext

    model_name = next((name for name, member in members.items() if member["kind"] == MODEL), None)
    live: dict[str, Any] = {}

    def load(name: str) -> Any:
        if name not in live:
            member = members[name]
            model = load(model_name) if model_name is not None and name != model_name else None
            optimizer = load(member["bound_to"]) if member.get("bound_to") else None
            live[name] = artifacts.load((member["digest"], member["kind"]),
                                        CodecContext(model=model, optimizer=optimizer, device=device))
        return live[name]

    for name in names:
        load(name)
    return live


def load_output(run_id: str, card_id: str, port: str, *, store: str | Path | None = None,
                device: str = "cpu") -> Any:
    """A stored output of a finished run, as a live value (a model comes back as a torch.nn.Module)."""
    return RunOutputs(run_id, store).load(card_id, port, device)
