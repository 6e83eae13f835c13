"""End-to-end tests: the built editor in headless Chromium against a real `cardloop serve`."""
