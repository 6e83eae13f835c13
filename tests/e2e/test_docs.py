"""The API docs page in headless Chromium, served by a real `cardloop serve`, with every request beyond the server
refused, as on a machine without internet: Swagger UI comes from the package and shows the API."""

from __future__ import annotations

from tests.e2e.test_editor import WAIT, chromium, page, server  # noqa: F401 (fixtures)


def test_the_api_docs_render_without_internet(page, server):  # noqa: F811
    from playwright.sync_api import expect

    elsewhere: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(server + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(server + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("cardloop", timeout=WAIT)
    expect(page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}/cancel")).to_be_visible()
    assert elsewhere == []
