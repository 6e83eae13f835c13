"""The Ray executor on a multi-node Ray cluster the test starts on loopback with `ray start` (a head and two
worker nodes, each holding one `fake_gpu`, a custom resource standing in for a GPU): a card whose pipeline
resources ask for a `fake_gpu` runs on a node that has one, and when that node is killed for real mid-card
(SIGKILL to its raylet and workers) the card is rescheduled on the other node and the run ends bit for bit as
on the local executor.

The test's own driver is connected to the session's Ray (tests/engine/conftest.py), so each run on this cluster
is a driver of its own: a subprocess (DRIVER). Every process of the cluster is in the session of the `ray start`
that started its node, and is SIGKILLed by session when the test ends, whatever happened; never `ray stop`,
which would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cardloop
from cardloop.cards.registry import load_card_file
from cardloop.store.records import RunRecords
from cardloop.store.root import RECORDS_FILE
from tests.engine.test_blocks import hand_loop, repeated_batch
from tests.engine.test_ray_executor import loop
from tests.engine.test_ray_groups import BATCHES, last_b, two_models
from tests.oracle import assert_same_weights

try:
    import ray  # noqa: F401  (its psutil comes with it)
except ImportError:  # as the session's Ray (tests/engine/conftest.py): skipped, but not under CI, which installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed: pip install -e '.[test,ray]'", allow_module_level=True)

#: Ray's switch for "no clusters on this machine": under it every server Ray starts listens on loopback
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
#: `ray start` refuses to join a cluster under that switch: a worker node's `ray start` runs with the switch
#: off for itself (and 127.0.0.1 as its address), while the processes it starts inherit it from the environment
JOIN = """
import sys
from ray._private import ray_constants, services
from ray.scripts.scripts import main

ray_constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
sys.argv[0] = "ray"
main()
"""
#: how long a node may take to start, and a run to end, on a loaded machine
START_SECONDS, RUN_SECONDS = 300, 600

CARDS = '''
import json
import os
import time

from cardloop.cards.spec import CardConfig, Port, card
from cardloop.kinds import INFO, MODEL


class HoldConfig(CardConfig):
    hold: str = ""


@card("test_cluster_node_probe", title="Node probe", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("node", INFO)], config=HoldConfig)
def node_probe(config, model):
    """The node it runs on and what Ray gave it. With `hold`, the first time: say where it runs in that file,
    then wait there until the test kills the node."""
    import ray

    context = ray.get_runtime_context()
    where = {"node": context.get_node_id(), "pid": os.getpid(), "assigned": context.get_assigned_resources()}
    if config.hold and not os.path.exists(config.hold):
        with open(config.hold + ".tmp", "w") as file:
            json.dump(where, file)
        os.replace(config.hold + ".tmp", config.hold)
        while True:
            time.sleep(1)
    return {"node": where}
'''

DRIVER = """
import json
import os
import sys

import ray

import cardloop
from cardloop.engine import ray_executor

pipeline, store, cards, address, out, options = sys.argv[1:]
result = cardloop.run(pipeline, store=store, executor="ray", ray_address=address, threads=1, cards=[cards],
                      **json.loads(options))
nodes = {node["NodeID"]: node["Resources"] for node in ray.nodes()}
(actor,) = ray_executor._workers.values()  # the run's state actor, still warm: where it ran, what it holds open
pid = actor.pid()
opened = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
with open(out, "w") as file:
    json.dump({"run": result.run_id, "nodes": nodes, "driver_node": ray.get_runtime_context().get_node_id(),
               "actor_node": actor.node(), "actor_opened": opened}, file)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackCluster:
    """A Ray cluster of nodes started with `ray start --block`, each in a session of its own, on 127.0.0.1, with
    $HOME (Ray's auth token) and Ray's temp folder in `folder`."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.home = folder / "home"
        self.home.mkdir()
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}  # a Ray
        # this process started sets RAY_AUTH_MODE=token, under which `ray start --head` wants a token already made
        self.env = {**inherited, **LOOPBACK, "HOME": str(self.home), "RAY_TMPDIR": str(folder / "tmp")}
        self.nodes: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, command: list[str], name: str, *options: str) -> subprocess.Popen:
        """Start a node and wait until `ray start` says it runs (it has joined the cluster)."""
        ports = [(flag, str(free_port())) for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                                       "--metrics-export-port", "--runtime-env-agent-port")]
        log = self.folder / f"{name}.log"
        node = subprocess.Popen([*command, "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                                 "--num-gpus", "0", "--object-store-memory", str(100 << 20), "--disable-usage-stats",
                                 *[part for pair in ports for part in pair], *options],
                                env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.nodes.append(node)
        deadline = time.monotonic() + START_SECONDS
        while "Ray runtime started" not in log.read_text():
            assert node.poll() is None and time.monotonic() < deadline, f"{name} did not start: {log.read_text()}"
            time.sleep(0.5)
        return node

    def start_head(self) -> None:
        self.start([str(Path(sys.executable).parent / "ray"), "start", "--head"], "head", "--port", str(self.port),
                   "--include-dashboard", "false", "--dashboard-port", str(free_port()),
                   "--temp-dir", str(self.folder / "ray"), "--resources", json.dumps({"fake_tpu": 1}))

    def add_worker(self, name: str, resources: dict[str, float]) -> None:
        self.start([sys.executable, "-c", JOIN, "start"], name, "--address", self.address,
                   "--resources", json.dumps(resources))

    def session_of(self, pid: int) -> int:
        """The session (one per node) of a process of this cluster."""
        session = os.getsid(pid)
        assert session in {node.pid for node in self.nodes}, f"process {pid} is not of this cluster's nodes"
        return session

    def kill_session(self, session: int) -> None:
        """SIGKILL every process of one node (its `ray start`, raylet, agents and workers)."""
        for pid in processes_in(session):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        for node in self.nodes:
            self.kill_session(node.pid)
            node.wait()


def processes_in(session: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    found.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (no fake_gpu; one fake_tpu, which no other node has) and two worker nodes with one fake_gpu each;
    stopped whatever happens."""
    made = LoopbackCluster(tmp_path_factory.mktemp("cluster"))
    try:
        made.start_head()
        made.add_worker("worker1", {"fake_gpu": 1})
        made.add_worker("worker2", {"fake_gpu": 1})
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def probe_cards(tmp_path_factory):
    path = tmp_path_factory.mktemp("cards") / "cluster_cards.py"
    path.write_text(CARDS)
    return path


def probed(csv, hold: Path | None = None):
    """Two batches of training with the probe between them, asking in the pipeline for a fake_gpu."""
    pipeline = loop(csv, batches=2)
    pipeline.add("test_cluster_node_probe", "probe", model=pipeline.card("step0")["model"],
                 hold=str(hold or ""), resources={"fake_gpu": 1})
    pipeline.cards.insert(pipeline.index("batch1"), pipeline.cards.pop())
    return pipeline


def drive(cluster: LoopbackCluster, pipeline, store: Path, cards: Path, folder: Path, **options) -> subprocess.Popen:
    """Run `pipeline` on the cluster from a driver process of its own, with cardloop.run's `options`; its answer
    goes to folder/answer.json."""
    path = pipeline.save(folder / "pipeline.yaml")
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(path), str(store), str(cards), cluster.address,
                             str(folder / "answer.json"), json.dumps(options)], env=cluster.env,
                            stdout=(folder / "driver.log").open("w"), stderr=subprocess.STDOUT)


def finished(driver: subprocess.Popen, folder: Path) -> dict:
    assert driver.wait(timeout=RUN_SECONDS) == 0, (folder / "driver.log").read_text()
    return json.loads((folder / "answer.json").read_text())


def test_a_card_asking_for_a_fake_gpu_in_the_pipeline_runs_on_a_node_that_has_one(cluster, regression_csv, store,
                                                                                   probe_cards, tmp_path):
    answer = finished(drive(cluster, probed(regression_csv), store, probe_cards, tmp_path), tmp_path)
    load_card_file(probe_cards)
    where = cardloop.load_output(answer["run"], "probe", "node", store=store)
    assert where["assigned"]["fake_gpu"] == 1
    assert answer["nodes"][where["node"]].get("fake_gpu") == 1  # a worker node, not the head
    assert RunRecords(store / "runs.sqlite").get_run(answer["run"]).status == "succeeded"


def test_a_node_killed_mid_card_has_its_card_rescheduled_on_another_and_the_run_ends_bit_for_bit(
        cluster, regression_csv, store, probe_cards, tmp_path):
    hold = tmp_path / "holding.json"
    driver = drive(cluster, probed(regression_csv, hold), store, probe_cards, tmp_path)
    try:
        deadline = time.monotonic() + RUN_SECONDS
        while not hold.exists():
            assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
            time.sleep(0.5)
        first = json.loads(hold.read_text())
        cluster.kill_session(cluster.session_of(first["pid"]))  # the whole node the card runs on, for real
        answer = finished(driver, tmp_path)
    finally:
        driver.kill()
    load_card_file(probe_cards)
    where = cardloop.load_output(answer["run"], "probe", "node", store=store)
    assert first["assigned"]["fake_gpu"] == 1 and where["node"] != first["node"]  # (Ray may not yet know it died)
    assert answer["nodes"][where["node"]].get("fake_gpu") == 1
    assert RunRecords(store / "runs.sqlite").get_run(answer["run"]).status == "succeeded"
    local = cardloop.run(loop(regression_csv, batches=2), store=tmp_path / "local", threads=1)
    assert_same_weights(cardloop.load_output(answer["run"], "step1", "model", store=store),
                        cardloop.load_output(local.run_id, "step1", "model", store=tmp_path / "local"))


def test_a_loop_block_on_another_node_than_the_driver_records_through_the_drivers_node(cluster, regression_csv,
                                                                                      store, probe_cards, tmp_path):
    """A loop block whose resources put its actor on a worker node: the actor opens no run records of its own
    (on a real cluster that node's copy of the store folder, if any, would be another file); its checkpoints and
    its body cards' records reach the driver's store through the records actor on the driver's node, and the
    run trains the hand-written loop's weights bit for bit."""
    pipeline = repeated_batch(regression_csv, epochs=2, steps=2)
    pipeline.card("epochs").resources = {"fake_gpu": 1}
    answer = finished(drive(cluster, pipeline, store, probe_cards, tmp_path, checkpoint_seconds=0), tmp_path)
    assert answer["actor_node"] != answer["driver_node"]
    assert answer["nodes"][answer["actor_node"]].get("fake_gpu") == 1
    assert not [path for path in answer["actor_opened"] if RECORDS_FILE in path], answer["actor_opened"]
    model, _ = hand_loop(regression_csv, 2, 2)
    assert_same_weights(cardloop.load_output(answer["run"], "epochs", "model", store=store), model)
    local = cardloop.run(pipeline, store=tmp_path / "local", threads=1, checkpoint_seconds=0)
    with RunRecords(store / RECORDS_FILE) as records, RunRecords(tmp_path / "local" / RECORDS_FILE) as there:
        assert records.get_run(answer["run"]).status == "succeeded"
        assert records.last_progress_step("epochs") == there.last_progress_step("epochs") is not None
        ours = [(card.path, card.executions) for card in records.iteration_cards(answer["run"])]
        assert ours and ours == [(card.path, card.executions) for card in there.iteration_cards(local.run_id)]


def test_two_models_whose_cards_need_what_no_one_node_has_together_train_on_two_nodes(cluster, regression_csv,
                                                                                      store, probe_cards, tmp_path):
    """One model's cards ask for a fake_gpu (the worker nodes have one), the other's for the head's fake_tpu: one
    actor could not run both, an actor per state group can, each on a node that has what its cards need. Both
    models end bit for bit as on the local executor."""
    pipeline = two_models(regression_csv)
    pipeline.card("model").resources = {"fake_gpu": 1}
    pipeline.card("model_b").resources = {"fake_tpu": 1}
    answer = finished(drive(cluster, pipeline, store, probe_cards, tmp_path), tmp_path)
    assert answer["nodes"][answer["actor_node"]].get("fake_gpu") == 1  # the first group's, the run's warm actor
    local = cardloop.run(two_models(regression_csv), store=tmp_path / "local", threads=1)
    for card in (f"step{BATCHES - 1}", last_b()):
        assert_same_weights(cardloop.load_output(answer["run"], card, "model", store=store),
                            cardloop.load_output(local.run_id, card, "model", store=tmp_path / "local"))


def test_the_tests_cluster_listens_on_loopback_only(cluster):
    """Every server of every node the test started (GCS, raylets, agents, workers) is bound to 127.0.0.1."""
    import psutil

    ours = {pid for node in cluster.nodes for pid in processes_in(node.pid)}
    listening = [conn.laddr.ip for conn in psutil.net_connections(kind="inet")
                 if conn.status == psutil.CONN_LISTEN and conn.pid in ours]
    assert listening and all(ip.removeprefix("::ffff:") == "127.0.0.1" for ip in listening), listening
