"""A run's record writer process: renders and inserts the card-execution and metric rows of a long run.

    python -m cardloop.engine.record_writer DATABASE RUN_ID

The recorder sends batches of `record_rows` messages on the process's standard input, each a frame of an
8-byte length and a pickle of plain values (None, bool, int, float, str, bytes, tuple, list, dict). The
unpickler here refuses every global but the plain types themselves, so a frame can build nothing else. End of
input ends the process, after it has written everything it received: a run killed mid-way keeps its records
up to its last batch. It runs at the lowest CPU priority.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from typing import Any, BinaryIO

from cardloop.engine.record_rows import RowRenderer
from cardloop.errors import StoreError
from cardloop.store.records import RunRecords

LENGTH_BYTES = 8
#: The writer yields the CPU to training: when torch's threads fill every core, a writer at the same priority
#: stalls a thread that the others then wait for (diabetes MLP on 2 cores and 2 threads: ratio 0.67 -> 0.83).
#: It catches up between steps and at the end of the run.
NICENESS = 19


class _PlainPickler(pickle.Pickler):
    """Pickles plain values; a numpy or torch number or array becomes its Python value (`tolist`), anything
    else its string. Those are the only globals a frame names: the plain types' own constructors."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            if (obj.__module__, obj.__name__) in _PLAIN_TYPES:
                return NotImplemented  # a constructor in a reduction made below: pickled by name
            return str, (str(obj),)
        value = obj.tolist() if hasattr(obj, "tolist") else str(obj)
        return type(value), (value,)


_PLAIN_TYPES = {("builtins", t.__name__): t for t in (bool, int, float, str, list)}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN_TYPES:
            return _PLAIN_TYPES[(module, name)]
        raise pickle.UnpicklingError(f"record frames hold plain values only, not {module}.{name}")


def encode(messages: list[tuple]) -> bytes:
    buffer = io.BytesIO()
    _PlainPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(messages)
    return buffer.getvalue()


def decode(data: bytes) -> list[tuple]:
    return _PlainUnpickler(io.BytesIO(data)).load()


class RecordWriterProcess:
    """The parent's end: starts the process, sends batches, and waits for it to finish writing."""

    def __init__(self, database: str, run_id: str):
        command = [sys.executable, "-m", "cardloop.engine.record_writer", database, run_id]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)

    def write(self, messages: list[tuple] | bytes) -> None:
        """Send a batch of messages, or one already encoded."""
        data = messages if isinstance(messages, bytes) else encode(messages)
        try:
            self.process.stdin.write(len(data).to_bytes(LENGTH_BYTES, "big") + data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()  # raises with the process's own message

    def close(self) -> None:
        """End the input and wait until every row is written; raises StoreError if the writer failed."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        errors = self.process.stderr.read().decode(errors="replace").strip()
        if self.process.wait() != 0 or errors:
            raise StoreError(f"the run's record writer failed: {errors or f'exit code {self.process.returncode}'}")


def serve(stream: BinaryIO, records: RunRecords, run_id: str) -> None:
    """Write every batch on `stream` until it ends."""
    renderer = RowRenderer(run_id)
    while True:
        header = stream.read(LENGTH_BYTES)
        if len(header) < LENGTH_BYTES:
            return
        data = stream.read(int.from_bytes(header, "big"))
        if len(data) < int.from_bytes(header, "big"):
            return  # the parent died mid-frame: what came before is written
        renderer.write(records, decode(data))


def main(argv: list[str]) -> int:
    database, run_id = argv
    os.nice(NICENESS)
    try:
        with RunRecords(database) as records:
            serve(sys.stdin.buffer, records, run_id)
    except Exception as exc:  # reported to the parent, which raises it from the run
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
