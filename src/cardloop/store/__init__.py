"""Storage: codecs that turn port values into bytes, the content-addressed artifact store, and run records.

Import the submodules directly (`cardloop.store.artifacts`, `cardloop.store.records`, ...): run records
need no torch, so this package imports nothing on its own.
"""
