"""The Ray executor: the process executor's per-card loop with its worker in a Ray actor (docs/ray.md).

One actor, the "state actor", holds a `Worker` (engine/worker.py) over the run's store and takes the same
CardTask messages the process executor sends, as plain JSON data. Training state stays live in it between
consecutive cards (the Worker's CachingLoader reuses the state it has just written); everything a card makes
is written to the store, which the actor and the run's process share. Like the process executor's worker, the
actor stays warm for later runs of this process (per thread, Ray job, store, thread count, card files and
resources).
The actor asks Ray for what the run's cards declare in their `resources` (`actor_options`). If its process
dies mid-card, the card is retried once on a fresh actor from what the store holds; a second death fails the
card (CardFailed naming it).

Ray is an optional extra (`pip install cardloop[ray]`): this module imports it only when a run uses it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from cardloop.engine.executors import ExecutorSetup
from cardloop.engine.messages import CardOutcome, CardTask, TaskFailure, report_from_json
from cardloop.engine.plan import Plan
from cardloop.engine.process import ProcessExecutor
from cardloop.engine.resolve import Schedule
from cardloop.errors import InvalidOption
from cardloop.pipeline.blocks import cards_within
from cardloop.store.location import bound_artifacts

#: a card type's resource name -> the actor option it becomes; any other name is a custom Ray resource
NAMED_OPTIONS = {"cpu": "num_cpus", "gpu": "num_gpus", "memory": "memory"}
#: Ray's switch for "no clusters on this machine", which makes every server it starts listen on loopback
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: retries of a card whose actor died under it
RETRIES = 1


def import_ray() -> Any:
    """The `ray` module; InvalidOption saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise InvalidOption("the ray executor needs Ray: pip install 'cardloop[ray]'") from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, connected: to the cluster at `address`, or (without one) to a Ray this process started on this machine.
    A Ray this process is already connected to (ray.init called before the run) is used as it is."""
    ray = import_ray()
    if not ray.is_initialized():
        if address is None:
            start_local()
        else:
            answering(address)
            try:
                ray.init(address=address, logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvalidOption(f"cannot join the Ray cluster at '{address}' (--ray-address): {exc}") from None
    return ray


def start_local(**options: Any) -> Any:
    """Start a Ray on this machine whose servers all listen on loopback (127.0.0.1) only, and connect to it.

    Ray takes the node's address for a new cluster unless it believes clusters are disabled, as on macOS and
    Windows: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (read by Ray when imported, and by the processes it starts)
    makes it use loopback for every server. `options` go to `ray.init` (num_cpus, resources, _temp_dir)."""
    ray = import_ray()
    from ray._private import ray_constants

    previous = os.environ.get(LOOPBACK_SWITCH), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_SWITCH] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False  # read when Ray picks this node's address
    try:
        ray.init(address="local", **{"include_dashboard": False, "logging_level": "WARNING"} | options)
    finally:  # a later ray.init joining a cluster gets the node's own address again
        ray_constants.ENABLE_RAY_CLUSTER = previous[1]
        if previous[0] is None:
            os.environ.pop(LOOPBACK_SWITCH, None)
        else:
            os.environ[LOOPBACK_SWITCH] = previous[0]
    return ray


def answering(address: str) -> None:
    """Refuse a HOST:PORT address (or ray://HOST:PORT) where nothing answers, before Ray waits minutes for it;
    other forms (`auto`) are Ray's to resolve."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InvalidOption(f"no Ray cluster answers at '{address}' (--ray-address): {exc.strerror or exc}; "
                            "start one with `ray start --head` or leave the address out for a local Ray") from None


def actor_options(plan: Plan, work: Schedule, cluster: dict[str, float]) -> dict[str, Any]:
    """The Ray options of the actor that runs `work`: for each resource the scheduled cards (and the cards in
    their blocks) declare, the largest amount any asks for. `cpu` is num_cpus (1 when none asks), `gpu`
    num_gpus, asked only where the cluster has GPUs (elsewhere the cards run on CPU, as they do locally),
    `memory` memory in bytes; any other name is a custom resource, which some node must have."""
    needs: dict[str, tuple[float, str]] = {}  # resource -> (largest amount, the card that asks for it)
    for pc in work.run:
        for card_type, _ in cards_within([(pc.card_type, pc.config)]):
            for name, amount in card_type.resources.items():
                if amount > needs.get(name, (0, ""))[0]:
                    needs[name] = (amount, pc.id)
    options: dict[str, Any] = {"num_cpus": needs.pop("cpu", (1, ""))[0]}
    gpus = needs.pop("gpu", (0, ""))[0]
    if gpus and cluster.get("GPU", 0) >= gpus:
        options["num_gpus"] = gpus
    if "memory" in needs:
        options["memory"] = int(needs.pop("memory")[0])
    for name, (amount, card) in needs.items():
        if cluster.get(name, 0) < amount:
            raise InvalidOption(f"card '{card}' asks for {amount:g} of the resource '{name}', which no node of the "
                                f"Ray cluster has enough of (it has {cluster.get(name, 0):g})")
    custom = {name: amount for name, (amount, _) in needs.items()}
    if custom:
        options["resources"] = custom
    return options


class CardActor:
    """The state actor's body: a Worker over the store, with the run's card files and thread count. `artifacts`: the
    URL the driver's store keeps its artifacts at (its store.json), which a node without that file must be told."""

    def __init__(self, store_root: str, threads: int | None, card_files: list[str], artifacts: str | None = None):
        import torch
        import torch.optim  # noqa: F401  (first use loads torch._dynamo: pay it before the first card)

        from cardloop.cards.registry import default_registry, load_card_file
        from cardloop.engine.worker import Worker

        if threads:
            torch.set_num_threads(threads)
        default_registry()
        for path in card_files:
            load_card_file(path)
        self.reports: list[dict] = []
        self.worker = Worker(store_root, lambda report: self.reports.append(report.to_json()), artifacts)

    def handle(self, task: dict) -> tuple[list[dict], dict]:
        """A task (CardTask.to_json) -> (the reports it sent, its outcome), as JSON data."""
        self.reports = []
        outcome = self.worker.handle(CardTask.from_json(task)).to_json()
        return self.reports, outcome

    def pid(self) -> int:
        return os.getpid()


class RayWorker:
    """A handle on a state actor: `call` as WorkerProcess.call, with a retry on a fresh actor when the actor's
    process dies mid-card. The reports of a card reach the run when it ends."""

    def __init__(self, ray: Any, store_root: Path, threads: int | None, card_files: list[str],
                 options: dict[str, Any]):
        self.ray = ray
        self.cls = ray.remote(CardActor).options(**options)
        self.args = (str(store_root), threads, card_files, bound_artifacts(store_root))
        self.actor: Any = None  # started on first use
        self.plan: Plan | None = None  # the run's plan (set by each run), to name the card in a failure
        self.pipeline: dict | None = None

    def call(self, task: CardTask, on_report: Callable[[Any], None] | None = None) -> CardOutcome:
        if task.pipeline is not None:
            self.pipeline = task.pipeline
        for attempt in range(RETRIES + 1):
            if self.actor is None:
                self.actor = self.cls.remote(*self.args)
            try:
                reports, outcome = self.ray.get(self.actor.handle.remote(task.to_json()))
                break
            except self.ray.exceptions.RayActorError:
                self.actor = None  # a fresh one next, which must be sent the pipeline
                if attempt == RETRIES:
                    card = self.plan.cards[task.target]
                    return CardOutcome(failure=TaskFailure(
                        f"the process of the Ray actor running it died {RETRIES + 1} times; run again to resume "
                        "from the stored outputs", card.id, card.card.type))
                task = dataclasses.replace(task, pipeline=self.pipeline)
            except BaseException:  # interrupted mid-card: its work would go on, so end the actor
                self.stop()
                raise
        for report in reports:
            if on_report is not None:
                on_report(report_from_json(report))
        return CardOutcome.from_json(outcome)

    def pid(self) -> int:
        """The actor's process id (a test checks that later runs reuse the actor)."""
        return self.ray.get(self.actor.pid.remote())

    def stop(self) -> None:
        if self.actor is not None:
            self.ray.kill(self.actor)
            self.actor = None


_workers: dict[tuple, RayWorker] = {}


def ray_worker_for(ray: Any, store_root: Path, threads: int | None, card_files: list[str],
                   options: dict[str, Any]) -> RayWorker:
    """A warm state actor's handle for this thread, Ray job, store, thread count, card files and resource options,
    made on first use: later runs reuse it (and what its Worker has cached, which is keyed by content hash). Runs
    in other threads at the same time (a sweep's variants) never share it."""
    key = (threading.get_ident(), ray.get_runtime_context().get_job_id(), str(store_root.resolve()), threads,
           tuple(card_files), json.dumps(options, sort_keys=True))
    if key not in _workers:
        _workers[key] = RayWorker(ray, store_root, threads, card_files, options)
    return _workers[key]


def stop_workers(thread: int | None = None) -> None:
    """End every warm state actor this process started, or with `thread` those of that thread's runs."""
    for key in [key for key in _workers if thread is None or key[0] == thread]:
        _workers.pop(key).stop()


class RayExecutor(ProcessExecutor):
    """Runs each scheduled card as a CardTask on the run's Ray actor (docs/ray.md)."""

    name = "ray"

    def __init__(self, setup: ExecutorSetup):
        super().__init__(setup)
        self.address = setup.options.ray_address

    def worker(self, plan: Plan, work: Schedule) -> RayWorker:
        ray = connect(self.address)
        options = actor_options(plan, work, ray.cluster_resources())
        found = ray_worker_for(ray, self.store_root, self.options.threads, self.card_files, options)
        found.plan = plan
        return found
