"""The executor registry: runs, the command line and the server take an executor by its registered name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cardloop
from cardloop.engine import executors
from cardloop.engine.executors import ExecutorSetup, executor_names, register_executor
from cardloop.engine.local import LocalExecutor
from cardloop.errors import InvalidOption, PipelineInvalid
from cardloop.examples import basic_training_loop
from cardloop.pipeline.fileformat import save_pipeline
from cardloop.pipeline.model import Pipeline
from cardloop.store.records import RunRecords
from tests.cards.test_registry import isolated_default_registry  # noqa: F401  (a fixture)
from tests.oracle import assert_same_weights

#: A card file that registers an executor: the local one, counting the cards it runs into $COUNTED.
COUNTING_EXECUTOR = """
import os

from cardloop.engine.executors import register_executor
from cardloop.engine.local import LocalExecutor


class CountingExecutor:
    name = "counting"

    def __init__(self, setup):
        self.local = LocalExecutor(setup.options.keep_outputs, setup.resumes, setup.stored_by_type)

    def run(self, plan, hooks, slots, schedule, loader):
        with open(os.environ["COUNTED"], "a") as counted:
            counted.write(f"{len(schedule.run)}\\n")
        return self.local.run(plan, hooks, slots, schedule, loader)


register_executor("counting", CountingExecutor, summary="the local executor, counting cards")
"""


class CountingExecutor:
    """The local executor, noting the cards of every schedule it runs."""

    name = "counting"
    ran: list[str] = []

    def __init__(self, setup: ExecutorSetup):
        self.local = LocalExecutor(setup.options.keep_outputs, setup.resumes, setup.stored_by_type)

    def run(self, plan, hooks, slots, schedule, loader):
        CountingExecutor.ran.extend(pc.id for pc in schedule.run)
        return self.local.run(plan, hooks, slots, schedule, loader)


@pytest.fixture
def registry(monkeypatch):
    """The executor registry as it is, that a test may add to; the real one comes back after."""
    monkeypatch.setattr(executors, "_executors", dict(executors._executors))
    CountingExecutor.ran = []


def loop(csv, batches=2):
    return basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=batches,
                               batch_size=16)


def test_the_built_in_executors_are_registered_by_name():
    assert executor_names()[:3] == ["local", "process", "ray"]


def test_a_registered_executor_runs_the_cards_when_a_run_names_it(registry, regression_csv, store):
    register_executor("counting", CountingExecutor)
    result = cardloop.run(loop(regression_csv), executor="counting", store=store, threads=1)
    assert result.status == "succeeded"
    assert CountingExecutor.ran == result.executed == [card.id for card in loop(regression_csv).cards]
    assert RunRecords(store / "runs.sqlite").get_run(result.run_id).executor == "counting"
    local = cardloop.run(loop(regression_csv), store=store / "local", threads=1)
    assert_same_weights(result.outputs["step1"]["model"], local.outputs["step1"]["model"])


def test_an_executors_check_refuses_a_run_before_it_is_recorded_or_run(registry, regression_csv, store):
    def refuse(plan, schedule, options):
        raise InvalidOption(f"the cluster cannot place card '{schedule.run[0].id}'")

    register_executor("refusing", CountingExecutor, check=refuse)
    with pytest.raises(InvalidOption, match="^the cluster cannot place card 'data'$"):
        cardloop.run(loop(regression_csv), store=store, executor="refusing")
    assert CountingExecutor.ran == [] and RunRecords(store / "runs.sqlite").list_runs(10) == []


def test_an_unknown_executor_is_refused_naming_the_registered_ones(registry, regression_csv, store):
    register_executor("counting", CountingExecutor)
    with pytest.raises(InvalidOption) as refused:
        cardloop.run(loop(regression_csv), executor="gpu", store=store)
    assert str(refused.value) == "unknown executor 'gpu'; valid executors: local, process, ray, counting"
    assert not store.exists()


HISTOGRAM_CARDS = """
from cardloop import Port, card


@card("make_histogram", title="Make histogram", category="test", outputs=[Port("histogram", "histogram")])
def make_histogram(config):
    return {"histogram": [1, 2, 3]}


@card("count_bins", title="Count bins", category="test", inputs=[Port("histogram", "histogram")],
      outputs=[Port("bins", "scalar")])
def count_bins(config, histogram):
    return {"bins": len(histogram)}
"""


def test_an_executor_that_stores_every_output_refuses_a_value_no_codec_stores(registry, tmp_path, store,
                                                                              monkeypatch, isolated_default_registry):
    from cardloop import kinds

    monkeypatch.setitem(kinds._custom_kinds, "histogram", "a histogram, which no codec stores")
    cards = tmp_path / "histogram_cards.py"
    cards.write_text(HISTOGRAM_CARDS)
    pipeline = Pipeline(name="histogram")
    made = pipeline.add("make_histogram", "make")
    pipeline.add("count_bins", "count", histogram=made["histogram"])
    register_executor("storing", CountingExecutor, stores_every_output=True)
    with pytest.raises(PipelineInvalid) as invalid:
        cardloop.run(pipeline, executor="storing", store=store, cards=[cards])
    assert "this run must store it (every output is stored)" in invalid.value.problems[0].message
    assert CountingExecutor.ran == []
    register_executor("counting", CountingExecutor)  # the same executor, keeping values in this process
    assert cardloop.run(pipeline, executor="counting", store=store, cards=[cards]).outputs["count"]["bins"] == 3


def cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "cardloop.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_the_cli_runs_an_executor_that_a_card_file_registers(tmp_path, regression_csv, store):
    cards = tmp_path / "counting_executor.py"
    cards.write_text(COUNTING_EXECUTOR)
    pipeline = save_pipeline(loop(regression_csv, batches=1), tmp_path / "loop.yaml")
    counted = tmp_path / "counted.txt"
    done = cli("run", pipeline, "--cards", cards, "--executor", "counting", "--store", store, "--quiet",
               COUNTED=str(counted))
    assert done.returncode == 0, done.stderr
    assert counted.read_text() == f"{len(loop(regression_csv, batches=1).cards)}\n"
    assert RunRecords(store / "runs.sqlite").list_runs(1)[0].executor == "counting"


def test_the_cli_refuses_an_unknown_executor_in_one_sentence(tmp_path, regression_csv, store):
    pipeline = save_pipeline(loop(regression_csv, batches=1), tmp_path / "loop.yaml")
    done = cli("run", pipeline, "--executor", "gpu", "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "unknown executor 'gpu'; valid executors: local, process, ray" in done.stderr


def test_the_ray_executor_without_ray_installed_says_how_to_install_it(regression_csv, store, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where the extra is not installed
    with pytest.raises(InvalidOption, match=r"the ray executor needs Ray: pip install 'cardloop\[ray\]'"):
        cardloop.run(loop(regression_csv), executor="ray", store=store)
