"""The editor end to end: the built bundle in headless Chromium, served by a real `cardloop serve`.

One test walks through what a user does: build the Basic Training Loop for one batch from the palette, wire
it by dragging from output handles to input handles, see an incompatible link refused, edit a config field
and undo / redo it, run the pipeline and watch the loss curve and the card statuses; then open the example
and run that.

Screenshots go to `tmp_path/screenshots`; with `CARDLOOP_SCREENSHOTS` set they are also copied into `docs/`
(the README's `docs/editor.png` is the last one).

Waits are for conditions (`expect(...)` with generous timeouts), never fixed sleeps: the test must hold on a
busy two-core machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
DOCS = Path(__file__).resolve().parents[2] / "docs"

WAIT = 20_000  # ms: a UI change (a card added, a link drawn, a field updated)
RUN_WAIT = 240_000  # ms: a whole run, torch import included, on a busy machine
SERVER_START_S = 90

# The Basic Training Loop for one batch: where each card type is dropped on the canvas, as (left, top) of
# the card in canvas pixels (zoom 1). Columns and rows are far enough apart for each card (240 px wide, at
# most ~140 px tall), clear of the canvas edges (where a connection drag auto-pans) and of the minimap
# (bottom right) and the zoom controls (bottom left). The ids are what the editor names a card of the type.
CARDS = [
    # (card type,               expected id,       left, top)
    ("data_load", "data_load", 60, 30),
    ("model_define", "model_define", 60, 230),
    ("training_init_optimizer", "init_optimizer", 370, 230),
    ("training_prepare_batch", "prepare_batch", 370, 30),
    ("training_zero_grad", "zero_grad", 60, 430),
    ("training_forward", "forward", 680, 30),
    ("training_loss", "loss", 680, 230),
    ("training_backward", "backward", 370, 430),
    ("training_optimizer_step", "optimizer_step", 680, 430),
]
CARD_WIDTH = 240  # web/src/pipelineFile.ts: a dropped card's top centre is 16 px above the drop point

# (source card, output port, target card, input port), in the guide's order
LINKS = [
    ("data_load", "dataset", "prepare_batch", "train_dataset"),
    ("model_define", "model", "init_optimizer", "model"),
    ("init_optimizer", "optimizer", "zero_grad", "optimizer"),
    ("model_define", "model", "forward", "model"),
    ("prepare_batch", "batch_data", "forward", "batch_data"),
    ("forward", "predictions", "loss", "predictions"),
    ("prepare_batch", "batch_data", "loss", "batch_data"),
    ("loss", "loss", "backward", "loss"),
    ("forward", "model", "backward", "model"),
    ("zero_grad", "optimizer", "optimizer_step", "optimizer"),
    ("backward", "model", "optimizer_step", "model"),
]


def _unavailable(reason: str) -> None:
    """A missing browser fails the run in CI and skips the test elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A real `cardloop serve` on a free port, with its own store, pipelines folder and data root."""
    for folder in ("store", "pipelines", "data"):
        (tmp_path / folder).mkdir()
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    command = [
        sys.executable, "-m", "cardloop.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--store", str(tmp_path / "store"),
        "--pipelines", str(tmp_path / "pipelines"),
        "--data-root", str(tmp_path / "data"),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        log.flush()
        return (tmp_path / "server.log").read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"cardloop serve exited with {process.returncode}:\n{server_log()}")
            try:
                with urllib.request.urlopen(f"{url}/api/cards", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"cardloop serve did not answer /api/cards within {SERVER_START_S} s:\n{server_log()}")
            time.sleep(0.2)  # polling interval while the server starts
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium and the playwright package, checked before the server is started."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the Python playwright package is missing: pip install -e '.[test]'")
    return CHROMIUM


@pytest.fixture
def page(chromium, server):
    """A headless Chromium page at 1600x1000; uncaught page errors fail the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(WAIT)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server + "/")
            yield page
            assert not errors, f"uncaught errors in the page: {errors}"
        finally:
            browser.close()


@pytest.fixture
def screenshot(tmp_path):
    """Save a screenshot under tmp_path/screenshots (and into docs/ when CARDLOOP_SCREENSHOTS is set)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()

    def take(page, name: str) -> Path:
        path = folder / name
        page.screenshot(path=str(path))
        if os.environ.get("CARDLOOP_SCREENSHOTS"):
            shutil.copyfile(path, DOCS / name)
        return path

    return take


# ---------------------------------------------------------------------------- helpers


def card(page, card_id: str):
    return page.locator(f'.react-flow__node[data-id="{card_id}"]')


def port(page, card_id: str, name: str, side: str):
    """An output (`side="source"`) or input (`side="target"`) handle of a card."""
    return card(page, card_id).locator(f'.react-flow__handle.{side}[data-handleid="{name}"]')


def edge(page, source: str, output: str, target: str, input_: str):
    return page.locator(f'.react-flow__edge[data-id="{source}.{output}->{target}.{input_}"]')


def centre(handle) -> tuple[float, float]:
    """The centre of a handle once React Flow has measured its card (until then the card is hidden)."""
    from playwright.sync_api import expect

    expect(handle).to_be_visible(timeout=WAIT)
    box = handle.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, f"handle {handle} has no box"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_link(page, source_handle, target_handle) -> None:
    """Press on an output handle, move to an input handle in small steps, release there."""
    x0, y0 = centre(source_handle)
    x1, y1 = centre(target_handle)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 12, y0 + 6, steps=4)  # leave the handle: React Flow starts drawing the connection
    page.mouse.move(x1, y1, steps=16)
    page.mouse.up()


def wait_for_run(page, expected: str = "succeeded", timeout: int = RUN_WAIT) -> None:
    """Wait for the run to end, then require that it ended `expected` (with the log in the message if not)."""
    from playwright.sync_api import expect

    status = page.get_by_test_id("run-status")
    expect(status).to_have_attribute("data-status", re.compile(r"^(succeeded|failed|cancelled|interrupted)$"),
                                      timeout=timeout)
    final = status.get_attribute("data-status")
    assert final == expected, (
        f"the run ended {final}: {status.get_attribute('title')}\n{page.get_by_test_id('run-log').inner_text()}"
    )


# ---------------------------------------------------------------------------- the test


def test_build_wire_edit_run_and_open_example(chromium, server, page, screenshot):
    from playwright.sync_api import expect

    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)  # the catalogue is in
    nodes = page.locator(".react-flow__node")
    edges = page.locator(".react-flow__edge")

    # ---- 1. an empty canvas; the Basic Training Loop for one batch, dragged from the palette
    if nodes.count():
        page.get_by_test_id("new-button").click()
    expect(nodes).to_have_count(0)
    expect(page.locator(".empty-hint")).to_be_visible()
    pane = page.locator(".react-flow__pane")
    inspector = page.get_by_test_id("inspector")
    for count, (card_type, card_id, left, top) in enumerate(CARDS, start=1):
        page.get_by_test_id(f"palette-item-{card_type}").drag_to(
            pane, target_position={"x": left + CARD_WIDTH / 2, "y": top + 16}
        )
        expect(nodes).to_have_count(count, timeout=WAIT)
        expect(card(page, card_id)).to_be_visible(timeout=WAIT)
        expect(inspector).to_have_attribute("data-card", card_id)  # a new card is selected
        if card_type == "data_load":
            page.get_by_test_id("config-path").fill("cardloop:diabetes.csv")
            expect(page.get_by_test_id("config-path")).to_have_value("cardloop:diabetes.csv")
        elif card_type == "model_define":
            # data_load alone (no split / normalize): 10 feature columns and the target
            page.get_by_test_id("config-input_dim").fill("10")
            expect(page.get_by_test_id("config-input_dim")).to_have_value("10")
    # each card landed where it was dropped (zoom 1, no pan): what the link drags below rely on
    pane_box = pane.bounding_box()
    for _, card_id, left, top in CARDS:
        box = card(page, card_id).bounding_box()
        assert box is not None
        assert abs(box["x"] - pane_box["x"] - left) < 3 and abs(box["y"] - pane_box["y"] - top) < 3, (card_id, box)

    for n, (source, output, target, input_) in enumerate(LINKS, start=1):
        drag_link(page, port(page, source, output, "source"), port(page, target, input_, "target"))
        expect(edge(page, source, output, target, input_)).to_have_count(1, timeout=WAIT)
        expect(edges).to_have_count(n)
    # wired and configured: every card is ready to run
    for _, card_id, _, _ in CARDS:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "ready", timeout=WAIT)
    # the pipeline file the editor exports has every link, in a script order where a card uses only cards above
    with page.expect_download() as download:
        page.get_by_test_id("export-button").click()
    exported = json.loads(Path(download.value.path()).read_text())
    inputs = {c["id"]: c.get("inputs", {}) for c in exported["cards"]}
    assert {(c["id"], c["type"]) for c in exported["cards"]} == {(i, t) for t, i, _, _ in CARDS}
    for source, output, target, input_ in LINKS:
        assert inputs[target].get(input_) == f"{source}.{output}", (target, input_, inputs[target])
    place = {c["id"]: i for i, c in enumerate(exported["cards"])}
    for source, _, target, _ in LINKS:
        assert place[source] < place[target], (source, target, list(place))
    assert next(c for c in exported["cards"] if c["id"] == "data_load")["config"] == {"path": "cardloop:diabetes.csv"}
    assert next(c for c in exported["cards"] if c["id"] == "model_define")["config"] == {"input_dim": 10}
    screenshot(page, "editor-built.png")

    # ---- 2. an incompatible link is refused, with the reason: a scalar into an optimizer input
    drag_link(page, port(page, "loss", "loss_value", "source"), port(page, "zero_grad", "optimizer", "target"))
    refusal = page.get_by_test_id("toast").filter(has_text="takes kind optimizer, not scalar")
    expect(refusal).to_be_visible(timeout=WAIT)
    expect(edges).to_have_count(len(LINKS))
    expect(edge(page, "loss", "loss_value", "zero_grad", "optimizer")).to_have_count(0)
    expect(edge(page, "init_optimizer", "optimizer", "zero_grad", "optimizer")).to_have_count(1)  # kept
    refusal.click()  # dismiss it: it would cover the top of the canvas
    expect(refusal).to_have_count(0)

    # ---- 3. edit a config field, undo and redo it (buttons, then the keyboard with focus outside the field)
    card(page, "init_optimizer").locator(".card-title").click()
    expect(inspector).to_have_attribute("data-card", "init_optimizer")
    rate = page.get_by_test_id("config-learning_rate")
    summary = card(page, "init_optimizer").locator(".card-config")
    expect(rate).to_have_value("")
    rate.fill("0.01")
    expect(rate).to_have_value("0.01")
    expect(summary).to_contain_text("learning_rate: 0.01")
    page.get_by_test_id("undo-button").click()
    expect(rate).to_have_value("")
    expect(summary).to_have_count(0)
    page.get_by_test_id("redo-button").click()
    expect(rate).to_have_value("0.01")
    expect(summary).to_contain_text("learning_rate: 0.01")
    card(page, "init_optimizer").locator(".card-title").click()  # focus off the field: the editor has the keys
    expect(rate).not_to_be_focused()
    page.keyboard.press("Control+z")
    expect(rate).to_have_value("")
    expect(summary).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(rate).to_have_value("0.01")
    expect(summary).to_contain_text("learning_rate: 0.01")
    expect(edges).to_have_count(len(LINKS))  # undo / redo touched only the config

    # ---- 4. run it: the status lights, the run status and the loss curve
    page.get_by_test_id("run-button").click()
    wait_for_run(page)
    for _, card_id, _, _ in CARDS:
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "done", timeout=WAIT)
    plot = page.get_by_test_id("loss-plot")
    expect(plot).to_have_attribute("data-points", "1", timeout=WAIT)
    expect(plot.locator("circle.plot-line-dot")).to_have_count(1)
    assert float(plot.get_attribute("data-last")) > 0
    screenshot(page, "editor-one-batch.png")

    # ---- 5. open the unrolled Basic Training Loop example and run it (Ctrl+Enter)
    with urllib.request.urlopen(f"{server}/api/examples/unrolled-training-loop", timeout=30) as response:
        example = json.load(response)
    steps = sum(1 for c in example["cards"] if c["type"] == "training_loss")
    last = example["cards"][-1]["id"]
    page.get_by_test_id("example-unrolled-training-loop").click()
    expect(page.get_by_test_id("pipeline-name")).to_have_value("unrolled-training-loop", timeout=WAIT)
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "idle")
    expect(plot).to_have_attribute("data-points", "0")
    expect(page.get_by_test_id(f"status-{last}")).to_have_attribute("data-status", "ready", timeout=WAIT)
    page.keyboard.press("Control+Enter")
    wait_for_run(page)
    expect(plot).to_have_attribute("data-points", str(steps), timeout=WAIT)
    expect(plot.locator("polyline.plot-line")).to_have_count(1)
    expect(page.get_by_test_id(f"status-{last}")).to_have_attribute("data-status", "done", timeout=WAIT)
    screenshot(page, "editor.png")


# ---------------------------------------------------------------------------- what a new user found (1440x900)

SMALL = {"width": 1440, "height": 900}


def open_example(page, name: str, cards: int) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size(SMALL)
    expect(page.get_by_test_id(f"example-{name}")).to_be_visible(timeout=WAIT)
    page.get_by_test_id(f"example-{name}").click()
    expect(page.locator(".react-flow__node")).to_have_count(cards, timeout=WAIT)


def set_config(page, card_id: str, field: str, value: str) -> None:
    from playwright.sync_api import expect

    card(page, card_id).locator(".card-title").click()
    expect(page.get_by_test_id("inspector")).to_have_attribute("data-card", card_id)
    page.get_by_test_id(f"config-{field}").fill(value)
    expect(page.get_by_test_id(f"config-{field}")).to_have_value(value)


def cut_off(page, selector: str) -> list[str]:
    """The texts of the elements matching `selector` that do not fit their box (scrollWidth beyond clientWidth)."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => el.textContent)""", selector)


def background(locator) -> str:
    return locator.evaluate("(el) => getComputedStyle(el).backgroundColor")


ONE_BATCH = ["data", "split", "normalize", "model", "opt", "batch0", "zero0", "fwd0", "loss0", "back0", "step0",
             "evaluate"]


def run_failing_at_the_forward_pass(page) -> None:
    """The one-batch example with a model for 3 features (the data has 10): it fails at fwd0."""
    open_example(page, "one-batch", len(ONE_BATCH))
    set_config(page, "model", "input_dim", "3")
    page.get_by_test_id("run-button").click()
    wait_for_run(page, "failed")


def test_the_cards_below_a_failure_read_not_run(page):
    from playwright.sync_api import expect

    run_failing_at_the_forward_pass(page)
    status = {card_id: page.get_by_test_id(f"status-{card_id}") for card_id in ONE_BATCH}
    for card_id in ONE_BATCH[:ONE_BATCH.index("fwd0")]:
        expect(status[card_id]).to_have_attribute("data-status", re.compile("^(done|cached)$"))
    expect(status["fwd0"]).to_have_attribute("data-status", "failed")
    for card_id in ONE_BATCH[ONE_BATCH.index("fwd0") + 1:]:
        expect(status[card_id]).to_have_attribute("data-status", "not-run")
        assert status[card_id].get_attribute("title") == "not run"
    expect(page.get_by_test_id("run-status")).to_have_text("failed")
    assert cut_off(page, '[data-testid="run-status"]') == []


def test_at_the_zoom_that_fits_the_pipeline_the_status_is_the_colour_of_the_card_and_its_minimap_place(page):
    from playwright.sync_api import expect

    run_failing_at_the_forward_pass(page)
    page.get_by_test_id("fit-button").click()
    done, failed, not_run = (background(card(page, c).locator(".card")) for c in ("model", "fwd0", "loss0"))
    assert len({done, failed, not_run, "rgb(255, 255, 255)"}) == 4, (done, failed, not_run)
    expect(page.locator(".react-flow__minimap-node")).to_have_count(len(ONE_BATCH))
    expect(page.locator(".react-flow__minimap-node.light-failed")).to_have_count(1)
    expect(page.locator(".react-flow__minimap-node.light-not-run")).to_have_count(len(ONE_BATCH) - 8)
    fills = {page.locator(f".react-flow__minimap-node.light-{light}").first.evaluate(
        "(el) => getComputedStyle(el).fill") for light in ("failed", "not-run", "done")}
    assert len(fills) == 3, fills


def test_a_refused_run_only_keeps_the_lights_and_offers_to_run_up_to_the_card_keeping_outputs(page):
    from playwright.sync_api import expect

    open_example(page, "one-batch", len(ONE_BATCH))
    page.get_by_test_id("run-button").click()  # persist checkpoint: batches, predictions, losses not kept
    wait_for_run(page)
    expect(page.get_by_test_id("status-loss0")).to_have_attribute("data-status", "done")

    card(page, "loss0").locator(".card-title").click()
    page.get_by_test_id("run-only-button").click()
    refusal = page.get_by_test_id("toast").filter(has_text="card 'loss0' cannot run alone")
    expect(refusal).to_be_visible(timeout=WAIT)
    assert "--until" not in refusal.inner_text() and "--persist" not in refusal.inner_text()
    for card_id in ONE_BATCH:  # the lights of the run before stay
        expect(page.get_by_test_id(f"status-{card_id}")).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")

    refusal.get_by_test_id("toast-action").click()  # "Run up to here, keeping outputs"
    wait_for_run(page)
    expect(page.get_by_test_id("toast").filter(has_text="cannot run alone")).to_have_count(0)  # a success clears it
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded (until loss0)")
    assert cut_off(page, '[data-testid="run-status"]') == []
    # what the checkpoint run did not keep was recomputed and kept: previews are there, not "not kept"
    card(page, "fwd0").locator(".card-title").click()
    predictions = page.get_by_test_id("output-predictions")
    expect(predictions.locator(".tag")).to_have_text("stored", timeout=WAIT)
    expect(predictions).not_to_contain_text("not kept")

    # now the card runs alone
    card(page, "loss0").locator(".card-title").click()
    page.get_by_test_id("run-only-button").click()
    wait_for_run(page)
    expect(page.get_by_test_id("status-loss0")).to_have_attribute("data-status", "done")


def test_port_labels_are_whole_on_every_card_type(page):
    from playwright.sync_api import expect

    page.set_viewport_size(SMALL)
    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    types = page.evaluate("""() => [...document.querySelectorAll('[data-testid^="palette-item-"]')]
        .map((el) => el.dataset.testid.slice('palette-item-'.length))""")
    assert "training_backward" in types
    for card_type in types:
        page.get_by_test_id(f"palette-item-{card_type}").click()
    expect(page.locator(".react-flow__node")).to_have_count(len(types))
    expect(card(page, "backward").locator(".port-label", has_text="gradients_computed")).to_be_visible()
    assert cut_off(page, ".port-label") == []
    outside = page.evaluate("""() => [...document.querySelectorAll('.port-label')].filter((label) => {
        const box = label.getBoundingClientRect(), node = label.closest('.card').getBoundingClientRect();
        return box.left < node.left || box.right > node.right; }).map((label) => label.textContent)""")
    assert outside == []


def test_the_config_form_hints_small_bounds_only_and_refuses_an_int64_batch_size_with_a_sentence(page):
    from playwright.sync_api import expect

    page.set_viewport_size(SMALL)
    expect(page.get_by_test_id("palette-item-training_prepare_batch")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("palette-item-training_prepare_batch").click()
    card(page, "prepare_batch").locator(".card-title").click()
    form = page.locator(".config-form")
    expect(form.locator('[data-field="batch_size"] .field-type')).to_have_text("integer > 0")
    expect(form.locator('[data-field="batch_index"] .field-type')).to_have_text("integer ≥ 0")
    set_config(page, "prepare_batch", "batch_size", "9223372036854775807")
    expect(page.get_by_test_id("config-error-batch_size")).to_have_text(
        "the value must be at most 9007199254740991, the largest whole number the editor keeps exactly")
    expect(page.get_by_test_id("inspector")).not_to_contain_text("9223372036854776000")


def boxes_overlap(a, b) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_cards_added_by_clicking_the_palette_do_not_overlap(page):
    from playwright.sync_api import expect

    page.set_viewport_size(SMALL)
    item = page.get_by_test_id("palette-item-training_forward")
    expect(item).to_be_visible(timeout=WAIT)
    for _ in range(4):
        item.click()
    nodes = page.locator(".react-flow__node")
    expect(nodes).to_have_count(4)
    expect(card(page, "forward4")).to_be_visible()
    boxes = [nodes.nth(i).bounding_box() for i in range(4)]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not boxes_overlap(a, b), (a, b)


def test_the_first_card_dropped_on_a_new_pipeline_lands_at_the_cursor(page):
    from playwright.sync_api import expect

    open_example(page, "one-batch", len(ONE_BATCH))  # the view is fitted to it, zoomed out
    page.get_by_test_id("new-button").click()
    expect(page.locator(".react-flow__node")).to_have_count(0)
    pane = page.locator(".react-flow__pane")
    page.get_by_test_id("palette-item-data_load").drag_to(pane, target_position={"x": 300, "y": 200})
    dropped = card(page, "data_load")
    expect(dropped).to_be_visible()
    expect(page.get_by_test_id("inspector")).to_have_attribute("data-card", "data_load")
    pane_box, box = pane.bounding_box(), dropped.bounding_box()
    # a dropped card's top centre is 16 px above the drop point, at zoom 1
    assert abs(box["x"] + box["width"] / 2 - (pane_box["x"] + 300)) < 3, box
    assert abs(box["y"] - (pane_box["y"] + 200 - 16)) < 3, box
    assert abs(box["width"] - CARD_WIDTH) < 1, box


def test_leaving_unsaved_edits_asks_first_and_a_reload_reopens_the_pipeline(page):
    from playwright.sync_api import expect

    page.set_viewport_size(SMALL)
    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("palette-item-data_load").click()
    page.get_by_test_id("palette-item-model_define").click()
    set_config(page, "model_define", "input_dim", "7")
    page.get_by_test_id("pipeline-name").fill("mine")
    expect(page.get_by_test_id("unsaved-marker")).to_have_attribute("data-unsaved", "true")

    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.accept()  # leave anyway

    page.on("dialog", answer)
    page.reload()
    assert asked == ["beforeunload"]
    # the pipeline is back as it was, still marked unsaved
    expect(page.locator(".react-flow__node")).to_have_count(2, timeout=WAIT)
    expect(page.get_by_test_id("pipeline-name")).to_have_value("mine")
    expect(page.get_by_test_id("unsaved-marker")).to_have_attribute("data-unsaved", "true")
    set_config(page, "model_define", "input_dim", "7")  # its config came back too

    page.get_by_test_id("save-button").click()
    expect(page.get_by_test_id("unsaved-marker")).to_have_attribute("data-unsaved", "false")
    page.reload()  # saved: nothing to ask
    expect(page.locator(".react-flow__node")).to_have_count(2, timeout=WAIT)
    expect(page.get_by_test_id("unsaved-marker")).to_have_attribute("data-unsaved", "false")
    assert asked == ["beforeunload"]


def test_a_table_preview_keeps_each_column_name_on_one_line_in_the_side_panel(page):
    from playwright.sync_api import expect

    open_example(page, "one-batch", len(ONE_BATCH))
    card(page, "data").locator(".card-title").click()
    page.get_by_test_id("run-until-keep-button").click()  # the data card alone, its table kept
    wait_for_run(page)
    header = page.get_by_test_id("output-dataset").locator("table.head th").first
    expect(header).to_be_visible(timeout=WAIT)
    lines = page.evaluate("""() => [...document.querySelectorAll('[data-testid="output-dataset"] table.head th')]
        .map((th) => { const range = document.createRange(); range.selectNodeContents(th.firstChild);
                       return range.getClientRects().length; })""")
    assert len(lines) == 11 and set(lines) == {1}, lines  # the diabetes data's 10 features and its target
