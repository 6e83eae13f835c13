"""Running loop blocks from the editor, end to end: the blocks example (epochs over batches, validation, early
stopping) imported into the built bundle in headless Chromium and run by a real `cardloop serve` and its engine.
The run's lights, progress label, counter and loss curve are checked against what the server recorded.

The pipelines are the example, its blocks drawn expanded, mostly with fewer epochs (a run takes seconds), written
in tmp_path."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.e2e.test_editor import WAIT, card, chromium, page, server, wait_for_run  # noqa: F401 (fixtures)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "basic_training_loop.yaml"
TOP_LEVEL = ["data", "split", "normalize", "model", "opt", "epochs", "evaluate"]
EPOCH_BODY = ["shuffle", "batches", "validate", "stop"]
BATCH_BODY = ["zero", "fwd", "loss", "back", "step"]
BATCHES = 45  # the diabetes data's 354 training rows (after the 20 % test split) in batches of 8


def variant(tmp_path: Path, epochs: int = 10, validate_every: int | None = None) -> Path:
    """The blocks example for `epochs` epochs, its blocks drawn expanded (`ui.expanded`: every body card on the
    canvas without a click); with `validate_every`, validation (and early stopping, which uses it) only every
    that many epochs."""
    pipeline = yaml.safe_load(EXAMPLE.read_text())
    block = next(c for c in pipeline["cards"] if c["id"] == "epochs")
    block["config"]["times"] = epochs
    inner = next(c for c in block["body"]["cards"] if c["id"] == "batches")
    for expanded in (block, inner):
        expanded["ui"] = {"expanded": True}
    if validate_every:
        next(c for c in block["body"]["cards"] if c["id"] == "validate")["when"] = {"every": validate_every,
                                                                                    "of": "epochs"}
    path = tmp_path / f"blocks-{epochs}.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path


def get(server: str, path: str):
    with urllib.request.urlopen(server + path, timeout=30) as response:
        return json.load(response)


def open_and_run(page, file: Path, persist: str = "checkpoint") -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("import-input").set_input_files(str(file))
    expect(card(page, "evaluate")).to_be_visible(timeout=WAIT)
    for body_card in EPOCH_BODY + BATCH_BODY:
        expect(card(page, body_card)).to_be_visible()
    page.get_by_test_id("persist-select").select_option(persist)
    page.locator(".react-flow__pane").click()  # focus on the canvas: the editor has the keys
    page.keyboard.press("Control+Enter")
    wait_for_run(page)


def only_run(server: str) -> str:
    (run,) = get(server, "/api/runs")
    return run["run_id"]


def test_a_run_of_the_blocks_example_lights_its_body_counts_top_level_cards_and_plots_every_batch(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path, epochs=2))
    for card_id in TOP_LEVEL + EPOCH_BODY + BATCH_BODY:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "done")
    expect(page.locator(".run-panel .progress-text")).to_have_text(f"{len(TOP_LEVEL)}/{len(TOP_LEVEL)}")
    # the block keeps where it got to: its last iteration of each loop and its last loss
    expect(page.get_by_test_id("block-progress-epochs")).to_have_text(
        re.compile(rf"^epoch 2/2 · batch {BATCHES}/{BATCHES} · loss \d"))

    run_id = only_run(server)
    points = get(server, f"/api/runs/{run_id}/metrics?name=loss_value")["points"]
    assert len(points) == 2 * BATCHES
    assert [p["card_id"] for p in points] == [f"epochs[{e}].batches[{b}].loss"
                                              for e in range(2) for b in range(BATCHES)]
    plot = page.get_by_test_id("loss-plot")
    expect(plot).to_have_attribute("data-points", str(len(points)))
    assert float(plot.get_attribute("data-last")) == points[-1]["value"]


def test_the_blocks_example_as_it_ships_runs_to_its_end_or_early_stop_with_every_batch_on_the_curve(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path))  # the example as it ships, its blocks drawn expanded
    points = get(server, f"/api/runs/{only_run(server)}/metrics?name=loss_value")["points"]
    epochs = len(points) // BATCHES
    assert len(points) == epochs * BATCHES and 1 <= epochs <= 10, len(points)
    expect(page.get_by_test_id("loss-plot")).to_have_attribute("data-points", str(len(points)))
    expect(page.get_by_test_id("block-progress-epochs")).to_have_text(
        re.compile(rf"^epoch {epochs}/10 · batch {BATCHES}/{BATCHES} · loss \d"))
    for card_id in TOP_LEVEL + EPOCH_BODY + BATCH_BODY:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "done")
    expect(page.locator(".run-panel .progress-text")).to_have_text(f"{len(TOP_LEVEL)}/{len(TOP_LEVEL)}")


def test_a_body_card_skipped_by_its_when_shows_skipped_never_done(page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    # validation every 2 epochs of 3: skipped in epochs 1 and 3, and early stopping, which uses it, with it
    open_and_run(page, variant(tmp_path, epochs=3, validate_every=2))
    for card_id in ("validate", "stop"):
        light = page.get_by_test_id(f"status-{card_id}")
        expect(light).to_have_attribute("data-status", "skipped")
        assert light.get_attribute("title").startswith("skipped")
    done = card(page, "shuffle").locator(".card").evaluate("(el) => getComputedStyle(el).backgroundColor")
    skipped = card(page, "validate").locator(".card").evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert skipped != done
    log = page.get_by_test_id("run-log")
    for line in ("epochs[1].validate done", "epochs[2].validate skipped", "epochs[2].stop skipped"):
        expect(log).to_contain_text(line)  # (the log shows its last lines: epoch 1's are further up)
    view = get(server, f"/api/runs/{only_run(server)}/cards/epochs.validate")
    assert (view["executions"], view["done"], view["skipped"]) == (3, 1, 2), view


def test_the_iteration_picker_previews_that_iterations_outputs_when_the_run_kept_every_iteration(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path, epochs=2), persist="all")
    card(page, "loss").locator(".card-title").click()
    expect(page.get_by_test_id("iteration-picker")).to_be_visible()
    page.get_by_test_id("iteration-epochs").fill("1")
    with page.expect_response(lambda r: urllib.parse.unquote(r.url).endswith(
            "/cards/epochs[0].batches[2].loss")) as answer:
        page.get_by_test_id("iteration-batches").fill("3")
    assert answer.value.status == 200
    preview = page.get_by_test_id("output-loss_value")
    expect(preview.locator(".tag")).to_have_text("stored")
    expected = get(server, f"/api/runs/{only_run(server)}/metrics?name=loss_value")["points"][2]
    assert expected["card_id"] == "epochs[0].batches[2].loss"
    expect(preview).to_contain_text(f"{expected['value']:.4g}")


def test_the_iteration_picker_says_an_iteration_was_not_stored_under_the_default_policy(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path, epochs=1))
    card(page, "fwd").locator(".card-title").click()
    page.get_by_test_id("iteration-batches").fill("3")
    expect(page.get_by_test_id("preview-problem")).to_have_text(
        'epochs[0].batches[2].fwd: not stored for this iteration under the persist policy (run with persist "all" '
        "to keep every iteration's outputs)")



def test_the_side_panel_says_an_iteration_in_which_the_card_was_skipped_was_skipped(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path, epochs=2, validate_every=2), persist="all")
    card(page, "validate").locator(".card-title").click()
    page.get_by_test_id("iteration-epochs").fill("2")
    expect(page.get_by_test_id("output-mse")).to_be_visible()  # epoch 2 validated: its outputs are stored
    page.get_by_test_id("iteration-epochs").fill("1")
    expect(page.get_by_test_id("preview-problem")).to_have_text(
        "epochs[0].validate: skipped in this iteration (its when did not hold, or it used a skipped value): no outputs")
    expect(page.get_by_test_id("output-mse")).to_have_count(0)


def test_a_second_run_served_from_the_cache_lights_the_blocks_body_cached_not_not_run(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    open_and_run(page, variant(tmp_path, epochs=1))
    page.keyboard.press("Control+Enter")  # the same pipeline again: every card comes from the cache
    expect(page.get_by_test_id("run-log")).to_contain_text("epochs cached")
    wait_for_run(page)
    for card_id in TOP_LEVEL + EPOCH_BODY + BATCH_BODY:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "cached")


def test_under_the_process_executor_the_body_cards_light_up_and_every_batch_is_on_the_curve(
        page, server, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("executor-select").select_option("process")
    open_and_run(page, variant(tmp_path, epochs=1))
    assert len(get(server, f"/api/runs/{only_run(server)}/metrics?name=loss_value")["points"]) == BATCHES
    for card_id in EPOCH_BODY + BATCH_BODY:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "done")
