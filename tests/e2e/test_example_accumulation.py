"""The gradient accumulation example in the editor: its `any` condition reads as one, and the cards that close a
window are ready to run (no problem for `any` or the Batch Iterator's `is_last`). The built bundle in headless
Chromium, served by a real `cardloop serve` (the fixtures of tests/e2e/test_editor.py)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_editor import WAIT, card, chromium, page, server  # noqa: F401 (fixtures)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gradient_accumulation.yaml"


def test_the_window_closing_cards_read_their_condition_and_are_ready(page):  # noqa: F811
    from playwright.sync_api import expect

    expect(page.get_by_test_id("palette-item-data_load")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("import-input").set_input_files(str(EXAMPLE))
    expect(card(page, "epochs")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("toggle-epochs").click()
    page.get_by_test_id("toggle-batches").click()
    for card_id in ("step", "zero"):
        expect(page.get_by_test_id(f"when-{card_id}")).to_have_text(
            "when every 4 of batches or batches.is_last = true")
        expect(page.get_by_test_id(f"status-{card_id}")).not_to_have_class("status-light light-unconfigured")
    card(page, "step").locator(".card-title").click()
    expect(page.get_by_test_id("inspector")).to_have_attribute("data-card", "step")
    expect(page.get_by_test_id("when-form")).to_be_visible()
    expect(page.get_by_test_id("when-error")).to_have_count(0)
