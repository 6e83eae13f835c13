"""Loop blocks in the editor, end to end (docs/blocks.md): a pipeline with nested blocks opens readable at fit,
blocks expand and collapse, cards are grouped into a loop and back. The built bundle in headless Chromium,
served by a real `cardloop serve` (the fixtures of tests/e2e/test_editor.py)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from tests.e2e.test_editor import WAIT, card, chromium, page, server  # noqa: F401 (fixtures)

FIXTURE = Path(__file__).resolve().parents[2] / "web" / "src" / "fixtures" / "training_loop_blocks.yaml"
TOP_LEVEL = ["data", "split", "normalize", "model", "opt", "epochs", "evaluate"]
READABLE_PX = 7.0  # a card title's rendered font size at fit: readable on a 1600x1000 screen


def open_fixture(page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("import-input").set_input_files(str(FIXTURE))
    expect(page.locator(".react-flow__node")).to_have_count(len(TOP_LEVEL), timeout=WAIT)


def zoom(page) -> float:
    transform = page.locator(".react-flow__viewport").evaluate("(el) => getComputedStyle(el).transform")
    return float(re.match(r"matrix\(([-\d.e]+)", transform).group(1))


def test_a_pipeline_with_blocks_opens_at_fit_as_its_top_level_cards_each_readable(page):  # noqa: F811
    open_fixture(page)
    shown = page.locator(".react-flow__node").evaluate_all("(els) => els.map((el) => el.dataset.id)")
    assert sorted(shown) == sorted(TOP_LEVEL)
    page.wait_for_function("() => document.querySelector('.react-flow__viewport').style.transform.includes('scale')")
    scale = zoom(page)
    title = card(page, "epochs").locator(".card-title")
    title_px = float(title.evaluate("(el) => parseFloat(getComputedStyle(el).fontSize)"))
    assert title_px * scale >= READABLE_PX, (scale, title_px)
    # every top-level card lies inside the canvas
    canvas = page.locator(".react-flow").bounding_box()
    for card_id in TOP_LEVEL:
        box = card(page, card_id).bounding_box()
        assert box["x"] >= canvas["x"] - 1 and box["x"] + box["width"] <= canvas["x"] + canvas["width"] + 1, card_id
    summary = page.get_by_test_id("block-summary-epochs")
    assert summary.inner_text() == "× 10 · until stop.stop"


def test_a_block_expands_to_show_its_body_and_collapses_again(page):  # noqa: F811
    from playwright.sync_api import expect

    open_fixture(page)
    page.get_by_test_id("toggle-epochs").click()
    for body_card in ("it", "batches", "eval", "stop"):
        expect(card(page, body_card)).to_be_visible()
    expect(card(page, "fwd")).to_have_count(0)  # inside the still collapsed batches
    expect(page.get_by_test_id("block-summary-batches")).to_contain_text("over it.batches")
    page.get_by_test_id("toggle-epochs").click()
    expect(page.locator(".react-flow__node")).to_have_count(len(TOP_LEVEL))


def test_selected_cards_are_grouped_into_a_loop_and_a_selection_breaking_the_order_is_refused(page):  # noqa: F811
    from playwright.sync_api import expect

    open_fixture(page)
    card(page, "data").locator(".card-title").click()
    card(page, "normalize").locator(".card-title").click(modifiers=["Shift"])
    page.keyboard.press("Control+g")
    expect(page.get_by_test_id("toast").last).to_contain_text(
        "'normalize' uses 'split', which stands between the selected cards")

    card(page, "split").locator(".card-title").click()
    card(page, "normalize").locator(".card-title").click(modifiers=["Shift"])
    card(page, "normalize").locator(".card-title").click(button="right", modifiers=["Shift"])
    page.get_by_test_id("menu-group").click()
    expect(card(page, "loop")).to_be_visible()
    expect(page.get_by_test_id("inspector")).to_have_attribute("data-card", "loop")
    expect(page.get_by_test_id("block-form")).to_be_visible()
    page.get_by_test_id("block-times").fill("0")
    expect(page.get_by_test_id("inspector")).to_contain_text(
        "config 'times' is 0: it must be a whole number of at least 1")
    page.get_by_test_id("ungroup-button").click()
    expect(card(page, "loop")).to_have_count(0)
    expect(card(page, "split")).to_be_visible()


def test_the_largest_example_still_opens(page, server):  # noqa: F811
    from playwright.sync_api import expect

    with urllib.request.urlopen(f"{server}/api/examples", timeout=30) as response:
        names = [e["name"] for e in json.load(response)]
    sizes = {}
    for name in names:
        with urllib.request.urlopen(f"{server}/api/examples/{name}", timeout=30) as response:
            sizes[name] = len(json.load(response)["cards"])
    largest = max(sizes, key=sizes.get)
    assert sizes[largest] >= 200
    expect(page.get_by_test_id(f"example-{largest}")).to_be_visible(timeout=WAIT)
    page.get_by_test_id(f"example-{largest}").click()
    expect(page.get_by_test_id("inspector-pipeline")).to_contain_text(f"{sizes[largest]} cards", timeout=WAIT)


def test_a_body_card_runs_every_k_iterations_of_a_loop_around_it_set_in_the_side_panel(page):  # noqa: F811
    from playwright.sync_api import expect

    open_fixture(page)
    page.get_by_test_id("toggle-epochs").click()
    card(page, "eval").locator(".card-title").click()
    expect(page.get_by_test_id("inspector")).to_have_attribute("data-card", "eval")
    page.get_by_test_id("when-mode").select_option("every")
    page.get_by_test_id("when-every").fill("0")
    expect(page.get_by_test_id("when-error")).to_have_text("when 'every' is 0: it must be a whole number of at least 1")
    page.get_by_test_id("when-every").fill("2")
    page.get_by_test_id("when-global").check()
    expect(page.get_by_test_id("when-error")).to_have_count(0)
    expect(page.get_by_test_id("when-eval")).to_have_text("when every 2 of epochs (global)")
    assert page.get_by_test_id("when-of").locator("option").all_inner_texts() == ["epochs"]
