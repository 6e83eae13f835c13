"""Runs started from the server: each in its own thread, its events kept and pushed to WebSocket clients."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cardloop.engine.events import CardEvent
from cardloop.errors import CardloopError


class RunCancelled(CardloopError):
    """Raised between two cards when a user cancels a run."""


@dataclass
class ActiveRun:
    """A run this server started: its events so far, and a way to stop it between two cards."""

    run_id: str | None = None
    events: list[dict] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    status: str = "starting"
    error: str | None = None
    subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)
            subscribers = list(self.subscribers)
        for loop, queue in subscribers:
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> tuple[list[dict], asyncio.Queue]:
        """The events so far and a queue of those to come (no event is lost or sent twice)."""
        queue: asyncio.Queue = asyncio.Queue()
        with self.lock:
            self.subscribers.append((loop, queue))
            return list(self.events), queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self.lock:
            self.subscribers = [(l, q) for l, q in self.subscribers if q is not queue]


BATCH_SECONDS = 0.05


async def next_batch(queue: asyncio.Queue, wait: float = BATCH_SECONDS) -> list[dict]:
    """The next event and every event published within `wait` seconds after it: one WebSocket message for
    them all, so that a run of hundreds of short cards sends a few dozen messages a second, not thousands."""
    batch = [await queue.get()]
    await asyncio.sleep(wait)
    while not queue.empty():
        batch.append(queue.get_nowait())
    return batch


class RunManager:
    """Starts runs in background threads and keeps them findable by run id."""

    def __init__(self, store: Path):
        self.store = store
        self.active: dict[str, ActiveRun] = {}

    def start(self, pipeline: Any, options: dict[str, Any]) -> ActiveRun:
        self._forget_old()
        active = ActiveRun()
        started = threading.Event()

        def progress(event: CardEvent) -> None:
            if event.kind == "run_started":
                active.run_id = event.run_id
                self.active[event.run_id] = active
                active.status = "running"
                started.set()
            elif event.kind == "started" and active.cancel.is_set():
                raise RunCancelled("the run was cancelled")
            active.publish(_event_json(event))

        def work() -> None:
            import cardloop

            try:
                result = cardloop.run(pipeline, store=self.store, progress=progress, **options)
                active.status = result.status
            except RunCancelled:
                active.status = "cancelled"
            except CardloopError as exc:
                active.status, active.error = "failed", str(exc)
            except Exception as exc:  # an engine bug must not kill the server
                active.status, active.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                active.finished.set()
                started.set()
                active.publish({"kind": "closed", "status": active.status, "error": active.error})

        threading.Thread(target=work, name="cardloop-server-run", daemon=True).start()
        started.wait(timeout=120)
        if active.run_id is None:
            raise CardloopError(active.error or "the run did not start")
        return active

    KEPT_FINISHED = 50

    def _forget_old(self) -> None:
        """Keep the events of the last KEPT_FINISHED finished runs; older runs are served from the records."""
        finished = [run_id for run_id, run in self.active.items() if run.finished.is_set()]
        for run_id in finished[: max(0, len(finished) - self.KEPT_FINISHED)]:
            del self.active[run_id]

    def cancel(self, run_id: str) -> bool:
        active = self.active.get(run_id)
        if active is None or active.finished.is_set():
            return False
        active.cancel.set()
        return True


def _event_json(event: CardEvent) -> dict:
    return {key: value for key, value in asdict(event).items() if value not in (None, {})}
