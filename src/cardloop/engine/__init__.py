"""The engine: planning (order, state versions, cache keys), executors and run events."""
