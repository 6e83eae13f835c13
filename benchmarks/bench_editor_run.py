"""The editor's main thread while the Basic Training Loop (276 cards) runs, in headless Chromium at 1440x900.

    .venv/bin/python benchmarks/bench_editor_run.py http://127.0.0.1:8000 [--runs 3] [--cancel-after MS]

Against a running `cardloop serve`: opens `?example=basic-training-loop`, turns the cache off, clicks Run and
counts the long tasks (over 50 ms, PerformanceObserver 'longtask') until the run ends. With `--cancel-after`,
clicks Cancel that many ms after Run and reports how long the click waited for the main thread (Event Timing's
processingStart - startTime) and until the status pill said "cancelling". See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json

from playwright.sync_api import expect, sync_playwright

OBSERVE = """() => {
  window.__long = []; window.__clicks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
    .observe({type: 'longtask'});
  new PerformanceObserver((list) => { for (const e of list.getEntries())
    if (e.name === 'click') window.__clicks.push(e.processingStart - e.startTime); })
    .observe({type: 'event', durationThreshold: 16});
}"""
WATCH_PILL = """() => { window.__cancelAt = performance.now();
  const pill = document.querySelector('[data-testid=run-status]');
  new MutationObserver(() => { if (pill.dataset.status === 'cancelling' && !window.__shown)
    window.__shown = performance.now(); }).observe(pill, {attributes: true}); }"""
ENDED = "/^(succeeded|failed|cancelled)$/.test(document.querySelector('[data-testid=run-status]').dataset.status)"


def measure(url: str, cancel_after: int | None) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(url + "/?example=basic-training-loop")
        expect(page.locator(".react-flow__node")).to_have_count(276, timeout=60_000)
        page.wait_for_timeout(1500)  # the fitted view settles
        page.get_by_test_id("cache-checkbox").uncheck()
        page.evaluate(OBSERVE)
        cancel = page.get_by_test_id("cancel-button").bounding_box()
        page.get_by_test_id("run-button").click()
        if cancel_after is not None:
            page.wait_for_timeout(cancel_after)
            page.evaluate(WATCH_PILL)
            page.mouse.click(cancel["x"] + cancel["width"] / 2, cancel["y"] + cancel["height"] / 2)
        page.wait_for_function(ENDED, timeout=300_000, polling=1000)
        page.wait_for_timeout(500)
        found = page.evaluate("""() => ({long: window.__long, clicks: window.__clicks, cancelAt: window.__cancelAt,
            shown: window.__shown, status: document.querySelector('[data-testid=run-status]').dataset.status})""")
        browser.close()
    result = {"status": found["status"], "long_tasks": len(found["long"]),
              "longest_ms": round(max(found["long"], default=0)), "long_total_ms": round(sum(found["long"]))}
    if cancel_after is not None:
        result["cancel_input_delay_ms"] = round(found["clicks"][-1]) if len(found["clicks"]) > 1 else None
        result["cancel_shown_ms"] = round(found["shown"] - found["cancelAt"]) if found["shown"] else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cancel-after", type=int, default=None, metavar="MS")
    options = parser.parse_args()
    for _ in range(options.runs):
        print(json.dumps(measure(options.url.rstrip("/"), options.cancel_after)))


if __name__ == "__main__":
    main()
