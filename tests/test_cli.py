"""The command line, run as a user runs it: a real process, real files, exit codes and sentences."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cardloop
from cardloop.examples import basic_training_loop
from cardloop.store.records import RunRecords
from tests.filesystems import fill, read_only, tmpfs
from tests.oracle import assert_same_weights, hand_written_loop
from tests.undecodable import offsets_past_the_end, swap_final_state


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cardloop.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture
def pipeline_file(tmp_path, regression_csv):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=7, batch_size=16,
                                   layers=(16, 16), optimizer_type="sgd", loss_type="huber", gradient_clip=0.5,
                                   learning_rate=0.05)
    return pipeline.save(tmp_path / "loop.yaml")


def latest_run(store):
    from cardloop.store.records import RunRecords

    return RunRecords(store / "runs.sqlite").list_runs(1)[0]


def test_run_trains_like_the_hand_written_loop_and_the_store_keeps_the_final_model(pipeline_file, store,
                                                                                    regression_csv):
    done = cli("run", pipeline_file, "--store", store, "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "loss over 7 steps" in done.stdout
    run = latest_run(store)
    model = cardloop.load_output(run.run_id, "step6", "model", store=store)
    expected = hand_written_loop(regression_csv, batches=7, batch_size=16, layers=[16, 16], optimizer_type="sgd",
                                 loss_type="huber", gradient_clip=0.5, learning_rate=0.05)
    assert_same_weights(model, expected)


def test_validate_accepts_a_valid_pipeline(pipeline_file):
    done = cli("validate", pipeline_file)
    assert done.returncode == 0 and "is valid (45 cards)" in done.stdout


def test_an_invalid_pipeline_exits_2_with_every_problem_and_no_traceback(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("version: 1\ncards:\n  - {id: m, type: model_define, config: {input_dim: 0}}\n"
                    "  - {id: o, type: training_init_optimizer, inputs: {model: m.modle}}\n")
    for command in ("validate", "run"):
        done = cli(command, file, "--store", tmp_path / "s") if command == "run" else cli(command, file)
        assert done.returncode == 2
        assert "config field 'input_dim' is 0" in done.stderr and "has no output 'modle'" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("content, expected", [
    ("version: 1\ncards: []\n".encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
    (b"version: 1\ncards: " + b"[" * 50_000 + b"]" * 50_000, "nests mappings and lists more than 100 levels deep"),
    (b"version: 1\ncards: []\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + b"".join(b"%c: &%c [%s]\n" % (98 + i, 98 + i, b", ".join([b"*%c" % (97 + i)] * 10)) for i in range(8)),
     "uses YAML aliases (*name) that repeat more than 100,000 characters")])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_file_that_is_no_pipeline_text_exits_2_with_a_sentence_naming_it(tmp_path, command, content, expected):
    file = tmp_path / "bad.yaml"
    file.write_bytes(content)
    done = cli(command, file, "--store", tmp_path / "s") if command == "run" else cli(command, file)
    assert done.returncode == 2
    assert f"'{file}' {expected}" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_a_failing_card_exits_1_with_a_sentence_and_the_run_id(tmp_path, regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=5, prepare=False, batches=1)
    done = cli("run", pipeline.save(tmp_path / "p.yaml"), "--store", store)
    assert done.returncode == 1
    assert "card 'fwd0' (training_forward) failed" in done.stderr and "input_dim" in done.stderr
    assert "Traceback" not in done.stderr
    run = latest_run(store)
    assert run.status == "failed" and f"run {run.run_id} failed" in done.stderr


def test_debug_shows_the_traceback(tmp_path, regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=5, prepare=False, batches=1)
    done = cli("run", pipeline.save(tmp_path / "p.yaml"), "--store", store, "--debug", "--quiet")
    assert done.returncode == 1 and "Traceback" in done.stderr


def test_runs_and_show_describe_the_run_and_a_cards_outputs(pipeline_file, store):
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    run = latest_run(store)
    listed = cli("runs", "--store", store)
    assert listed.returncode == 0 and run.run_id in listed.stdout
    shown = cli("show", run.run_id[:17], "--store", store)
    assert shown.returncode == 0 and "step6" in shown.stdout and "loss_value: 7 steps" in shown.stdout
    card = cli("show", run.run_id, "back3", "--store", store)
    assert card.returncode == 0 and '"retain_graph": false' in card.stdout
    model = cli("show", run.run_id, "step6", "--store", store)
    assert '"parameters": 369' in model.stdout and '"type": "SGD"' in model.stdout


def test_piped_output_keeps_a_row_on_one_line_with_its_words_whole(pipeline_file, store):
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    run = latest_run(store)
    environment = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    listed = subprocess.run([sys.executable, "-m", "cardloop.cli", "runs", "--store", str(store)],
                            capture_output=True, text=True, env=environment, timeout=300)
    row = next(line for line in listed.stdout.splitlines() if run.run_id in line)
    assert run.name in row and "succeeded" in row and "checkpoint" in row and "…" not in row


def test_show_an_unknown_run_or_card_is_a_sentence(pipeline_file, store):
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    run = latest_run(store)
    done = cli("show", "nope", "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "nope" in done.stderr
    done = cli("show", run.run_id, "stepp3", "--store", store)
    assert done.returncode == 1 and "did you mean 'step3'" in done.stderr


def test_show_of_a_model_whose_artifact_does_not_decode_is_a_sentence_naming_card_port_and_artifact(pipeline_file,
                                                                                                   store):
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    run = latest_run(store)
    digest = swap_final_state(store, run.run_id, "model.model", offsets_past_the_end)
    done = cli("show", run.run_id, "step6", "--store", store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (f"error: output 'model' of card 'step6' in run {run.run_id} cannot be loaded: artifact {digest} "
            "(model-safetensors) passes its hash check but does not decode") in " ".join(done.stderr.split())


def test_cards_lists_the_guides_cards(tmp_path):
    done = cli("cards", "--json")
    ids = {entry["id"] for entry in json.loads(done.stdout)}
    assert {"training_prepare_batch", "training_backward", "model_define"} <= ids


def one_line(text):
    return " ".join(text.split())


def test_a_diverging_run_says_from_which_step_its_loss_is_not_finite(tmp_path, regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=4, batch_size=16,
                                   optimizer_type="sgd", learning_rate=1e30)
    done = cli("run", pipeline.save(tmp_path / "diverges.yaml"), "--store", store, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "loss over 4 steps: not finite from step 1 (" in one_line(done.stdout)
    assert "3 of 4 steps are inf or nan; before it, first" in one_line(done.stdout)
    shown = one_line(cli("show", latest_run(store).run_id, "--store", store).stdout)
    assert "loss_value: 4 steps, first" in shown and "loss_value not finite from step 1" in shown
    assert "(card 'loss1' first)" in shown


def test_a_run_whose_records_could_not_be_written_exits_1_saying_it_failed(pipeline_file, store):
    from tests.engine.test_recorder import refuse_metric_rows

    refuse_metric_rows(store)
    done = cli("run", pipeline_file, "--store", store, "--quiet")
    run = latest_run(store)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"run {run.run_id} failed: its records could not all be written" in one_line(done.stderr)
    assert run.status == "failed" and "metric rows refused" in run.error


def damage_store(store, how):
    store.parent.mkdir(parents=True, exist_ok=True)
    if how == "a file":
        store.write_text("not a folder")
        return
    store.mkdir()
    database = store / "runs.sqlite"
    if how == "empty":
        database.touch()
    elif how == "garbage":
        database.write_bytes(b"garbage" * 1000)
    else:
        database.mkdir()


@pytest.mark.parametrize(("how", "said"), [
    ("a file", "is a file, not a folder"),
    ("empty", "runs.sqlite is empty (0 bytes), so its history is lost"),
    ("garbage", "are damaged (file is not a database)"),
    ("a folder", "are a folder"),
])
def test_a_damaged_store_is_one_sentence_naming_it_with_exit_code_1(pipeline_file, store, how, said):
    damage_store(store, how)
    for command in (["runs"], ["show", "someid"], ["run", pipeline_file, "--quiet"]):
        done = cli(*command, "--store", store)
        assert done.returncode == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert said in one_line(done.stderr) and f"store '{store}'" in one_line(done.stderr), (command, done.stderr)


def test_a_read_only_store_is_listed_shown_and_exported_and_a_run_says_it_is_read_only(pipeline_file, tmp_path):
    with tmpfs(tmp_path / "mount", size="16m") as mount:
        store = mount / "store"
        assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
        with RunRecords(store / "runs.sqlite") as records:  # closed: a file open for writing keeps a mount writable
            run_id = records.list_runs(1)[0].run_id
        read_only(mount)
        assert run_id in cli("runs", "--store", store).stdout
        assert "loss_value: 7 steps" in cli("show", run_id, "--store", store).stdout
        exported = cli("export", run_id, "step6", "model", tmp_path / "model.safetensors", "--store", store)
        assert exported.returncode == 0 and (tmp_path / "model.safetensors").stat().st_size > 0, exported.stderr
        done = cli("run", pipeline_file, "--store", store, "--quiet", "--no-cache")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"store '{store}' is read-only" in one_line(done.stderr)


def test_a_full_disk_is_one_sentence_saying_to_free_space(pipeline_file, tmp_path):
    with tmpfs(tmp_path / "mount") as mount:
        store = mount / "store"
        assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
        fill(mount)
        done = cli("run", pipeline_file, "--store", store, "--quiet", "--no-cache")
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"store '{store}' is out of disk space" in one_line(done.stderr) and "free some space" in done.stderr


def test_a_custom_card_file_reaches_the_process_executors_workers(store):
    examples = Path(__file__).resolve().parents[1] / "examples"
    done = cli("run", examples / "custom_l1.yaml", "--cards", examples / "cards" / "l1_regularization.py",
               "--executor", "process", "--store", store, "--quiet", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "loss over 45 steps" in done.stdout


def in_one_process(code):
    """`code` run after importing the CLI's app in a fresh interpreter; it must succeed."""
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom cardloop.cli import app\n" + code],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_runs_cards_validate_and_show_run_import_no_torch(pipeline_file, store):
    """Listing and checking answer at once: none of these commands pays for importing torch."""
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    run_id = latest_run(store).run_id
    commands = [["runs", "--store", str(store)], ["cards"], ["cards", "--json"], ["validate", str(pipeline_file)],
                ["show", run_id, "--store", str(store)]]
    done = in_one_process(f"for args in {commands!r}:\n"
                          "    app(args, standalone_mode=False)\n"
                          "    assert 'torch' not in sys.modules, f'cardloop {args[0]} imported torch'\n"
                          "print('no torch')\n")
    assert done.stdout.rstrip().endswith("no torch")


def test_show_a_training_card_summarizes_its_stored_state_without_needless_imports(pipeline_file, store):
    """Importing torch takes seconds, building the first optimizer in a process imports torch._dynamo (seconds
    more), and the table codec pandas and pyarrow (a second): a stored model and optimizer need none of them."""
    assert cli("run", pipeline_file, "--store", store, "--quiet").returncode == 0
    args = ["show", latest_run(store).run_id, "step6", "--store", str(store)]
    done = in_one_process(f"app({args!r}, standalone_mode=False)\n"
                          "assert 'torch' not in sys.modules, 'show imported torch to summarize a stored model'\n"
                          "assert 'torch._dynamo' not in sys.modules, 'show built the optimizer'\n"
                          "assert 'pyarrow' not in sys.modules, 'show imported the table codec'\n")
    assert '"type": "SGD"' in done.stdout and '"parameters_with_state": 0' in done.stdout


def test_a_model_of_a_card_file_class_is_shown_without_its_card_file_and_exported_with_cards(tmp_path, store,
                                                                                            regression_csv):
    from safetensors.torch import load_file

    from cardloop.pipeline.model import Pipeline
    from tests.model_files import write_model_file

    path = write_model_file(tmp_path)
    p = Pipeline(name="card-file-class")
    p.add("data_load", "data", path=str(regression_csv))
    p.add("model_define", "model", input_dim=4, module=f"{path.stem}:Net", kwargs={"input_dim": 4}, device="cpu")
    run_id = cardloop.run(p, store=store, cards=[path]).run_id
    shown = cli("show", run_id, "model", "--store", store)
    assert shown.returncode == 0 and f'"module": "{path.stem}:Net"' in shown.stdout, shown.stderr
    target = tmp_path / "net.safetensors"
    refused = cli("export", run_id, "model", "model", target, "--store", store)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"which is not loaded in this process; load it with --cards {path.resolve()}" in \
        " ".join(refused.stderr.split())
    exported = cli("export", run_id, "model", "model", target, "--store", store, "--cards", path)
    assert exported.returncode == 0, exported.stderr
    assert sorted(load_file(str(target))) == ["body.0.bias", "body.0.weight", "head.bias", "head.weight"]
