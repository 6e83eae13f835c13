"""The editor's sweep view and run options, end to end: the built bundle in headless Chromium, a real
`cardloop serve`, and a real sweep (`cardloop.sweep` on a small loop) recorded in the server's store."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

import cardloop
from tests.e2e.test_editor import WAIT, chromium, page, screenshot, server  # noqa: F401 (fixtures)
from tests.test_sweeps import tiny

RATES = [0.001, 0.01, 0.1]


def get(server: str, path: str):
    with urllib.request.urlopen(server + path, timeout=30) as response:
        return json.load(response)


def open_sweeps(page):
    from playwright.sync_api import expect

    page.get_by_test_id("sweeps-button").click()
    expect(page.get_by_test_id("sweep-view")).to_be_visible()
    return page.get_by_test_id("sweep-view")


def shown_variants(page) -> list[int]:
    return [int(v) for v in page.get_by_test_id("sweep-row").evaluate_all("(rows) => rows.map((r) => r.dataset.variant)")]


@pytest.fixture
def swept(server, tmp_path):  # noqa: F811
    """A sweep of three learning rates, recorded in the store of the server under test."""
    return cardloop.sweep(tiny(), set={"opt.learning_rate": RATES}, store=tmp_path / "store", threads=1)


def test_a_store_without_sweeps_says_how_to_make_one_and_refresh_shows_one_made_since(page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    view = open_sweeps(page)
    expect(view.get_by_test_id("sweeps-empty")).to_contain_text("No sweeps in this store yet")
    expect(view.get_by_test_id("sweeps-empty")).to_contain_text("cardloop sweep")
    made = cardloop.sweep(tiny(), set={"opt.learning_rate": RATES[:2]}, store=tmp_path / "store", threads=1)
    view.get_by_test_id("sweeps-refresh").click()
    expect(view.get_by_test_id(f"sweep-item-{made.sweep_id}")).to_contain_text("2/2 variants")
    expect(view.get_by_test_id("sweep-row")).to_have_count(2)
    expect(view.get_by_test_id("sweeps-empty")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("sweep-view")).to_have_count(0)


def test_a_sweep_shows_a_row_and_a_line_per_variant_and_sorts_by_a_metric(swept, server, page,  # noqa: F811
                                                                          screenshot):  # noqa: F811
    from playwright.sync_api import expect

    view = open_sweeps(page)
    expect(view.get_by_test_id(f"sweep-item-{swept.sweep_id}")).to_contain_text("3/3 variants")
    detail = view.get_by_test_id("sweep-detail")
    expect(detail).to_have_attribute("data-sweep", swept.sweep_id)

    # the table: one row per variant, in grid order, with its setting and status
    rows = detail.get_by_test_id("sweep-row")
    expect(rows).to_have_count(3)
    assert shown_variants(page) == [0, 1, 2]
    for row, rate in zip(rows.all(), RATES):
        expect(row.locator("td.setting")).to_have_text(str(rate))
        expect(row.locator("td.status-succeeded")).to_have_text("succeeded")

    # sorting by a metric: best (lowest mse) first, as `cardloop sweep --sort` sorts; again: the other way
    best_first = [int(v) for v in swept.table(sort="evaluate.mse")["variant"]]
    assert best_first != [0, 1, 2], "the variants are in mse order already: sorting would change nothing"
    detail.get_by_test_id("sort-evaluate.mse").click()
    expect(detail.locator("th[aria-sort='ascending']")).to_contain_text("evaluate.mse")
    assert shown_variants(page) == best_first
    mse = [float(t) for t in rows.locator("td[data-column='evaluate.mse']").all_inner_texts()]
    assert mse == sorted(mse)
    detail.get_by_test_id("sort-evaluate.mse").click()
    expect(detail.locator("th[aria-sort='descending']")).to_contain_text("evaluate.mse")
    assert shown_variants(page) == best_first[::-1]

    # the chart: one line per variant with every point of its loss curve, a legend naming each by its settings
    curves = {v["index"]: v["curve"] for v in get(server, f"/api/sweeps/{swept.sweep_id}")["variants"]}
    plot = detail.get_by_test_id("sweep-plot")
    lines = plot.get_by_test_id("sweep-line")
    expect(lines).to_have_count(3)
    for index in range(3):
        line = plot.locator(f"[data-testid='sweep-line'][data-variant='{index}']")
        expect(line).to_have_attribute("data-points", str(len(curves[index])))
        assert len(curves[index]) > 1
        expect(line.locator("polyline")).to_have_count(1)
    expect(plot.get_by_test_id("sweep-legend-item")).to_have_text([f"opt.learning_rate={r}" for r in RATES])

    # the curves of another metric the variants recorded: the validation's and evaluation's mse
    mse_curves = {v["index"]: v["curve"] for v in get(server, f"/api/sweeps/{swept.sweep_id}?metric=mse")["variants"]}
    detail.get_by_test_id("sweep-metric").select_option("mse")
    expect(plot.locator("figcaption")).to_contain_text("mse per step")
    for index in range(3):
        expect(plot.locator(f"[data-testid='sweep-line'][data-variant='{index}']")).to_have_attribute(
            "data-points", str(len(mse_curves[index])))
    detail.get_by_test_id("sweep-metric").select_option("loss_value")
    expect(plot.locator("figcaption")).to_contain_text("loss_value per step")

    # hovering the chart shows every variant's value at that step
    box = plot.locator("svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.99, box["y"] + box["height"] / 2)
    tooltip = plot.get_by_test_id("sweep-plot-tooltip")
    expect(tooltip).to_contain_text(f"step {len(curves[0]) - 1}")
    for rate in RATES:
        expect(tooltip).to_contain_text(f"opt.learning_rate={rate}")
    screenshot(page, "editor-sweeps.png")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """$HOME in tmp_path for the server (asked before it), should anything of Ray write under it."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_the_ray_address_is_offered_for_the_ray_executor_only_and_reaches_the_run(home, page):  # noqa: F811
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1440, "height": 900})  # a laptop's screen: the run options still fit
    expect(page.get_by_test_id("example-unrolled-training-loop")).to_be_visible(timeout=WAIT)
    page.get_by_test_id("example-unrolled-training-loop").click()
    expect(page.get_by_test_id("pipeline-name")).to_have_value("unrolled-training-loop", timeout=WAIT)
    executor = page.get_by_test_id("executor-select")
    address = page.get_by_test_id("ray-address-input")
    expect(executor.locator("option")).to_have_text(["local", "process", "ray"])  # the server's executors
    expect(address).to_have_count(0)
    for name, offered in (("ray", 1), ("process", 0), ("ray", 1), ("local", 0), ("ray", 1)):
        executor.select_option(name)
        expect(address).to_have_count(offered)
        assert page.evaluate("() => { const bar = document.querySelector('.toolbar');"
                             " return bar.scrollWidth <= bar.clientWidth; }"), f"the toolbar overflows with {name}"
        expect(page.get_by_test_id("cancel-button")).to_be_in_viewport(ratio=1)
    with socket.socket() as bound:  # bound but not listening: the port is taken, and refuses connections
        bound.bind(("127.0.0.1", 0))
        where = f"127.0.0.1:{bound.getsockname()[1]}"
        address.fill(where)
        page.get_by_test_id("run-button").click()
        expect(page.get_by_test_id("run-log")).to_contain_text(f"no Ray cluster answers at '{where}'", timeout=WAIT)
