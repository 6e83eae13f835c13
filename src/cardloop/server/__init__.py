"""The HTTP API and live events for the visual editor and headless use (`cardloop serve`)."""
