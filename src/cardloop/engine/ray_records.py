"""The run records of a state actor on another node than the run's process (docs/ray.md, "Clusters and sweeps").

A loop block running on a state actor reads and writes the store's run records itself: it takes up the last
iteration checkpoint an earlier run stored, writes new ones, and writes what its body cards did in chunks. The
records are the store folder's SQLite file, on the machine of the run's process (the driver): SQLite is not to be
shared over a network file system (docs/store.md). So an actor on another node opens no records of its own; it
starts a small actor on the driver's node (`RecordsActor`, pinned there, no CPU asked) that opens them, and goes
through it (`RemoteRecords`). An actor on the driver's node opens the file directly, as the process executor's
worker does. The records actor is the state actor's own: it ends with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the RunRecords methods a block running in a worker uses (engine/blocks.py, engine/stored.py,
#: engine/worker_blocks.py): nothing else is served
METHODS = frozenset({"cache_keys_with_progress", "last_progress_step", "latest_card_progress", "newest_outputs",
                     "outputs_for_key", "snapshots_for_key", "add_artifacts", "add_card_progress",
                     "add_iteration_cards"})


class RecordsActor:
    """The store's run records on the driver's node, for a state actor elsewhere."""

    def __init__(self, path: str):
        from cardloop.store.records import RunRecords

        self.records = RunRecords(path)

    def call(self, name: str, args: tuple) -> Any:
        if name not in METHODS:
            raise AttributeError(f"the run records served to a Ray actor have no method '{name}'")
        return getattr(self.records, name)(*args)


class RemoteRecords:
    """RunRecords's methods that a block uses (METHODS), each a call to a RecordsActor, waited for."""

    def __init__(self, ray: Any, actor: Any):
        self.ray, self.actor = ray, actor

    def __getattr__(self, name: str) -> Any:
        if name not in METHODS:
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            return self.ray.get(self.actor.call.remote(name, tuple(_sendable(arg) for arg in args)))

        return call


def _sendable(arg: Any) -> Any:
    """A generator, set or other iterable of rows or keys as a list (a generator cannot be sent)."""
    if isinstance(arg, (str, bytes, int, float, bool, dict, list, tuple)) or arg is None:
        return arg
    return list(arg)


def elsewhere(ray: Any, driver_node: str | None) -> bool:
    """Whether this process (a Ray actor) runs on another node than the driver's (`driver_node`, when known)."""
    return driver_node is not None and ray.get_runtime_context().get_node_id() != driver_node


def remote_records(ray: Any, driver_node: str, store_root: str) -> RemoteRecords:
    """The run records of the store at `store_root` on the driver's node, through a RecordsActor started there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from cardloop.store.root import RECORDS_FILE

    actor = ray.remote(RecordsActor).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(driver_node, soft=False)
    ).remote(str(Path(store_root) / RECORDS_FILE))
    return RemoteRecords(ray, actor)
