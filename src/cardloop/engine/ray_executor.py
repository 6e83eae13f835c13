"""The Ray executor: a run's cards on a Ray actor that keeps the training state live (docs/ray.md).

One actor, the "state actor", holds a `Worker` (engine/worker.py) over the run's store. The run sends it its
scheduled cards in one call, a CardTask of several targets as plain JSON data (`CardWalk.task`, engine/process.py);
the actor runs them as the local executor does, values and state live from card to card, writes to the store
what cards outside the call need and what the persist policy keeps, and streams back each card's start, reports
and outcome while it runs (a Ray streaming generator), which the run replays onto its hooks. Before that call,
data cards independent of each other run as Ray tasks, at the same time (engine/ray_tasks.py). Like the process
executor's worker, the actor stays warm for later runs of this process (per thread, Ray job, store, thread
count, card files and resources). The actor asks Ray for what the run's cards ask for in their `resources`
(`actor_options`). A run whose cards work on independent state groups runs each group's cards on an actor of its
own, at the same time (engine/ray_groups.py).
If its process or its node dies mid-card, the cards without an outcome are sent again to a fresh actor, on a live
node, from what the store holds; a second death fails the card (CardFailed naming it). An interrupted or cancelled
run kills the actor.

Ray is an optional extra (`pip install cardloop[ray]`): this module imports it only when a run uses it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from cardloop.engine.events import RunHooks
from cardloop.engine.executors import ExecutorSetup
from cardloop.engine.messages import CardOutcome, CardTask, TaskFailure, report_from_json
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.process import CardWalk, ProcessExecutor
from cardloop.engine.ray_groups import Stages, run_stages, stages
from cardloop.engine.ray_records import elsewhere, remote_records
from cardloop.engine.ray_tasks import run_waves, task_waves
from cardloop.engine.resolve import Schedule
from cardloop.errors import CardFailed, CardloopError, InvalidOption
from cardloop.pipeline.resources import CardResources, resources_within
from cardloop.store.location import bound_artifacts

if TYPE_CHECKING:
    from cardloop.engine.run import RunOptions

#: the names Ray's nodes give the resources cardloop names cpu, gpu and memory; any other name is a custom one
RAY_NAMES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
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


def actor_options(plan: Plan, work: Schedule, nodes: list[dict[str, float]]) -> dict[str, Any]:
    """The Ray options of the actor that runs `work`, on a cluster whose live nodes have `nodes` (each node's
    Ray resources): for each resource the scheduled cards (and the cards in their blocks) ask for, the largest
    amount any asks for, each card's type's `resources` overridden by the pipeline's (pipeline/resources.py).
    `cpu` is num_cpus (1 when none asks), `gpu` num_gpus, `memory` memory in bytes; any other name is a custom
    resource. A type's own `gpu` is asked for only where a node has that many GPUs (elsewhere the card runs on
    CPU, as it does locally); a card with `device: cuda`, and anything the pipeline asks for, some node must
    have. InvalidOption naming the card when none has it, or when no node has everything the actor asks for."""
    needs: dict[str, tuple[float, str]] = {}  # resource -> (largest amount, the card that asks for it)
    wishes: dict[str, tuple[float, str]] = {}  # the same, for what a node may lack (a type's own gpu)
    for card in resources_within((pc.card, pc.card_type, pc.config) for pc in work.run):
        for name, (amount, required) in card_needs(card).items():
            chosen = needs if required else wishes
            if name not in chosen or amount > chosen[name][0]:
                chosen[name] = (amount, card.path)
    for name, (amount, card) in wishes.items():
        if name not in needs and most(nodes, name) >= amount:
            needs[name] = (amount, card)
    for name, (amount, card) in needs.items():
        if amount > most(nodes, name):
            raise InvalidOption(lacking(card, name, amount, most(nodes, name)))
    wanted = {"cpu": 1} | {name: amount for name, (amount, _) in needs.items()}
    if not any(all(node.get(RAY_NAMES.get(name, name), 0) >= amount for name, amount in wanted.items())
               for node in nodes):
        shown = ", ".join(f"{name} {amount:g}" for name, amount in wanted.items() if amount)
        raise InvalidOption(f"the run's cards ask together for {shown} on one node (its state actor runs them "
                            "all), which no node of the Ray cluster has; lower their `resources` in the pipeline "
                            "or add such a node")
    options: dict[str, Any] = {"num_cpus": wanted.pop("cpu")}
    if wanted.get("gpu"):
        options["num_gpus"] = wanted["gpu"]
    if wanted.get("memory"):
        options["memory"] = int(wanted["memory"])
    custom = {name: amount for name, amount in wanted.items() if name not in RAY_NAMES and amount}
    if custom:
        options["resources"] = custom
    return options


def card_needs(card: CardResources) -> dict[str, tuple[float, bool]]:
    """What one card asks for: {resource: (amount, whether some node must have it)}. A card whose config says
    `device: cuda` needs a GPU (1, or the share its `resources` give)."""
    needs = {name: (amount, name != "gpu" or name in card.asked) for name, amount in card.amounts.items()}
    if getattr(card.config, "device", None) == "cuda":
        if "gpu" in card.asked and not card.amounts["gpu"]:
            raise InvalidOption(f"card '{card.path}' has device: cuda but resources gpu: 0; give it a GPU (gpu: 1, "
                                "or a share such as 0.5) or set device: cpu")
        needs["gpu"] = (card.amounts.get("gpu") or 1, True)
    return needs


def most(nodes: list[dict[str, float]], name: str) -> float:
    """The most of a resource any one node has."""
    return max((node.get(RAY_NAMES.get(name, name), 0) for node in nodes), default=0)


def lacking(card: str, name: str, amount: float, most_any: float) -> str:
    """Why no node can run `card`, and what would be valid."""
    if name == "gpu" and most_any == 0:
        return (f"card '{card}' needs a GPU (device: cuda, or resources gpu), but no node of the Ray cluster has "
                "one; set device: cpu (or auto) and leave gpu out of its resources, or run on a cluster with GPUs")
    return (f"card '{card}' asks for {amount:g} of the resource '{name}', which no node of the Ray cluster has "
            f"enough of (the most one node has: {most_any:g}); lower it in the card's `resources` in the pipeline "
            "or add a node that has it")


def room_for_two(first: dict[str, Any], others: list[dict[str, Any]], nodes: list[dict[str, float]]) -> bool:
    """Whether the live nodes have CPUs for the actor with options `first` and the largest of `others` at once."""
    needed = first["num_cpus"] + max(options["num_cpus"] for options in others)
    return needed <= sum(node.get("CPU", 0) for node in nodes)


def live_nodes(ray: Any) -> list[dict[str, float]]:
    """The Ray resources of each live node of the cluster."""
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def stage_options(plan: Plan, found: Stages, nodes: list[dict[str, float]]) -> list[dict[str, Any]] | None:
    """The options of the actor of each stage of a run cut by state group (engine/ray_groups.py): the first
    segment's actor (which also runs the prelude and the join) asks for what those cards ask for, each other
    segment's for what its own cards ask for, so that two groups may need what no one node has together. None
    where the cluster lacks the CPUs for two actors at once (then one actor runs every card)."""
    groups = list(found.segments.values())
    first = actor_options(plan, Schedule([*found.prelude, *groups[0], *found.join], []), nodes)
    others = [actor_options(plan, Schedule(cards, []), nodes) for cards in groups[1:]]
    return [first, *others] if room_for_two(first, others, nodes) else None


class Placement(NamedTuple):
    """Where a run's cards go on Ray (`placement`)."""

    waves: list[list[PlannedCard]]  # data cards run as tasks, in waves (engine/ray_tasks.py)
    task_options: dict[int, dict[str, Any]]  # each task's Ray options, by its card's position
    rest: list[PlannedCard]  # the cards for the actors
    stages: Stages | None  # those cards' stages, when they are cut by state group (engine/ray_groups.py)
    actor_options: list[dict[str, Any]]  # the options of each actor: one, or one per stage


def placement(plan: Plan, work: Schedule, nodes: list[dict[str, float]]) -> Placement:
    """Where a run's cards go, and what each task and actor asks Ray for. Raises InvalidOption naming a card where
    no node has what an actor or a task would ask for."""
    waves = task_waves(work)
    task_options = {pc.position: actor_options(plan, Schedule([pc], []), nodes) for wave in waves for pc in wave}
    rest = [pc for pc in work.run if pc.position not in task_options]
    found = stages(rest)
    options = stage_options(plan, found, nodes) if found is not None else None
    if options is None:
        return Placement(waves, task_options, rest, None, [actor_options(plan, work, nodes)])
    return Placement(waves, task_options, rest, found, options)


def check_placement(plan: Plan, work: Schedule, options: RunOptions) -> None:
    """Refuse, before the run is recorded, a run whose cards ask for what no node of the cluster has
    (registered as the ray executor's `check`: it connects to Ray, or starts it)."""
    placement(plan, work, live_nodes(connect(options.ray_address)))


class CardActor:
    """The state actor's body: a Worker over the store, with the run's card files and thread count. `artifacts`: the
    URL the driver's store keeps its artifacts at (its store.json), which a node without that file must be told;
    `driver_node`: the node of the run's process, where the run records are (on another node, a block goes
    through a records actor there: engine/ray_records.py)."""

    def __init__(self, store_root: str, threads: int | None, card_files: list[str], artifacts: str | None = None,
                 driver_node: str | None = None):
        import ray
        import torch
        import torch.optim  # noqa: F401  (first use loads torch._dynamo: pay it before the first card)

        from cardloop.cards.registry import default_registry, load_card_file
        from cardloop.engine.worker import Worker

        if threads:
            torch.set_num_threads(threads)
        default_registry()
        for path in card_files:
            load_card_file(path)
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.worker = Worker(store_root, lambda report: self.events.put({"at": self.worker.running,
                                                                         **report.to_json()}), artifacts,
                             (lambda: remote_records(ray, driver_node, store_root))
                             if elsewhere(ray, driver_node) else None)

    def segment(self, task: dict) -> Iterator[list[dict]]:
        """Run a task of consecutive cards (CardTask.to_json), yielding what happens as it happens, in batches
        (a Ray streaming generator): {"started": position}, a report on the card running ({"at": position, ...},
        engine/messages.report_from_json), and each card's outcome ({"outcome": position, ...CardOutcome}).
        The cards run in a thread of their own, so that the events go out while they run."""
        events = self.events = queue.SimpleQueue()

        def run() -> None:
            try:
                self.worker.handle(CardTask.from_json(task),
                                   lambda position, outcome: events.put({"outcome": position, **outcome.to_json()}),
                                   lambda position: events.put({"started": position}))
            finally:
                events.put(None)

        threading.Thread(target=run, name="cardloop-segment", daemon=True).start()
        while True:
            batch, event = [], events.get()
            while event is not None:
                batch.append(event)
                if events.empty():
                    break
                event = events.get()
            if batch:
                yield batch
            if event is None:
                return

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


class RayWorker:
    """A handle on a state actor: runs a segment of a run's cards (`run_segment`), with a retry on a fresh actor
    when the actor's process dies mid-card; ends the actor when the run is interrupted or cancelled."""

    def __init__(self, ray: Any, store_root: Path, threads: int | None, card_files: list[str],
                 options: dict[str, Any]):
        self.ray = ray
        self.cls = ray.remote(CardActor).options(**options)
        self.args = (str(Path(store_root).resolve()), threads, card_files, bound_artifacts(store_root),
                     ray.get_runtime_context().get_node_id())  # the driver's node: engine/ray_records.py
        self.actor: Any = None  # started on first use
        self.halted = False  # ended for good (engine/ray_groups.py): no retry on a fresh actor

    def run_segment(self, walk: CardWalk, cards: list[PlannedCard], send: Callable[[dict], Any] | None = None,
                    lock: Any = None) -> None:
        """Run `cards` (consecutive cards of the run) on the actor in one call, each card's events replayed onto
        the run's hooks as they arrive (`walk`). A failing card stops them (CardFailed). If the actor's process
        dies, the cards without an outcome go to a fresh actor (from what the store holds), one call per card from
        then on, so that the card an actor dies in is known (the events it sent last may be lost with it): a card
        in which it dies twice fails, naming it. Anything else raised meanwhile (Ctrl-C, a cancelled run) kills
        the actor, which stops the card running on it. `send`: where the events go (by default, replayed onto
        `walk` at once); `lock`: held while a task is made from `walk` (engine/ray_groups.py)."""
        send = send or functools.partial(_replay, walk)
        lock = lock or contextlib.nullcontext()
        self.halted = False
        remaining, alone, deaths = list(cards), False, 0  # deaths: while remaining[0] ran alone
        while remaining:
            if self.actor is None:
                self.actor = self.cls.remote(*self.args)
            count = len(remaining)
            with lock:
                task = walk.task(remaining[:1] if alone else remaining, with_pipeline=True).to_json()
            try:
                for ref in self.actor.segment.options(num_returns="streaming").remote(task):
                    for event in self.ray.get(ref):
                        send(event)
                        if "outcome" in event:
                            remaining.pop(0)
                            deaths = 0
            except CardFailed:
                raise
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.NodeDiedError):  # its process or node
                if self.halted:
                    raise
                self.stop()  # died (an actor only unavailable may still run the card: end it); a fresh one next,
                # which Ray places on a live node holding its resources
                deaths += alone and len(remaining) == count
                alone = True
                if deaths > RETRIES:
                    card = remaining[0]
                    send({"outcome": card.position, **CardOutcome(failure=TaskFailure(
                        f"the process of the Ray actor running it died {deaths} times; run again to resume "
                        "from the stored outputs", card.id, card.card.type)).to_json()})
                continue
            except BaseException:  # interrupted or cancelled mid-card: its work would go on, so end the actor
                self.stop()
                raise
            if len(remaining) == count:
                raise CardloopError(f"the Ray actor ended a call without the outcome of card '{remaining[0].id}'")

    def pid(self) -> int:
        """The actor's process id (a test checks that later runs reuse the actor)."""
        return self.ray.get(self.actor.pid.remote())

    def node(self) -> str:
        """The id of the node the actor runs on."""
        return self.ray.get(self.actor.node.remote())

    def halt(self) -> None:
        """End the actor for good: a call running on it fails, and is not retried on a fresh actor."""
        self.halted = True
        self.stop()

    def stop(self) -> None:
        if self.actor is not None:
            self.ray.kill(self.actor)
            self.actor = None


def _replay(walk: CardWalk, event: dict) -> bool:
    """Turn one event of a segment into the run's hooks; True for a card's outcome."""
    pc = walk.plan.cards[event.get("outcome", event.get("at", event.get("started")))]
    if "outcome" in event:
        outcome = CardOutcome.from_json(event)
        started = outcome.started - (time.time() - time.perf_counter()) if outcome.started else time.perf_counter()
        walk.finish(pc, outcome, started, outcome.seconds)
        return True
    if "at" in event:
        walk.reports(pc)(report_from_json(event))
    else:
        walk.hooks.card_started(pc)
    return False


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
    """Runs the scheduled cards on the run's Ray actor, consecutive cards in one call, after its data cards as Ray
    tasks (engine/ray_tasks.py) where some run in parallel (docs/ray.md)."""

    name = "ray"

    def __init__(self, setup: ExecutorSetup):
        super().__init__(setup)
        self.address = setup.options.ray_address

    def run(self, plan: Plan, hooks: RunHooks, slots: list[Any], work: Schedule, loader: Any) -> list[Any]:
        """The data cards as tasks first, in parallel waves (engine/ray_tasks.py), then the rest on the actor, or
        on an actor per state group (engine/ray_groups.py)."""
        if not work.run:
            return slots
        ray = connect(self.address)
        where = placement(plan, work, live_nodes(ray))
        first, *more = where.actor_options
        workers = [ray_worker_for(ray, self.store_root, self.options.threads, self.card_files, first),
                   *(RayWorker(ray, self.store_root, self.options.threads, self.card_files, options)
                     for options in more)]  # the first is the run's warm actor; the others end with their stage
        walk = CardWalk(self, plan, hooks)
        if where.waves:
            run_waves(ray, walk, where.waves, workers[0].args, where.task_options, RETRIES)
        if where.stages is not None:
            run_stages(where.stages, workers, walk, _replay)
        elif where.rest:
            workers[0].run_segment(walk, where.rest)
        return slots
