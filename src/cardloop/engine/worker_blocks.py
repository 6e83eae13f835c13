"""A block card in a worker process: the run services its iterations get there (docs/design.md, Executors).

The worker runs a whole block as one card, with the settings the run sent (`messages.BlockRun`). It writes the
block's iteration checkpoints into the store's run records itself, as the run's recorder would, and takes up
the last one an earlier run stored; it relays the body cards' events and the block's progress to the run's
process while the block runs, when that process listens; what the body cards did is written into the run records in chunks as the block runs.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from cardloop.engine.blocks import IterationStats, RunServices
from cardloop.engine.messages import BlockProgress, BlockRun, BodyCardEvent
from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.record_rows import plain


class BlockListener:
    """The worker's listener for the hooks of a block task."""

    def __init__(self, block: BlockRun, plan: Plan, slots: list[Any], send: Callable[[Any], None] | None,
                 artifacts: Any, records: Any, write_outputs: Callable[[PlannedCard, dict, bool], dict],
                 keep_all: bool):
        """`write_outputs(pc, outputs, keep_all)`: store a card's outputs, in CardOutcome.outputs's form."""
        self.block, self.plan, self.slots = block, plan, slots
        self.send, self.artifacts, self.records = send, artifacts, records
        self.write_outputs, self.keep_all = write_outputs, keep_all
        self.stats: list[dict[str, Any]] = []
        self.stopped: str | None = None
        if send is not None and block.body_events:  # hooks ask who listens: only then do body cards report
            self.body_card_started = self._started
            self.body_card_finished = self._finished
        if send is not None and block.block_progress:
            self.block_progress = self._progress

    def services(self, hooks: Any, loader: Any) -> RunServices:
        """The block's RunServices: this worker's plan, slots and store, the run's settings."""
        from cardloop.engine.stored import StoreAvailability

        block = self.block
        return RunServices(hooks, self.plan, self.slots, self.records,
                           StoreAvailability(self.plan, self.records, self.artifacts, cards=()), loader,
                           block.checkpoint_seconds, block.every_iteration, block.use_cache, block.fresh_from,
                           block.start_at, block.stop_at, stats_chunk=block.stats_chunk)

    def _started(self, path: str, pc: PlannedCard) -> None:
        self.send(BodyCardEvent(path, "started"))

    def _finished(self, path: str, pc: PlannedCard, status: str, seconds: float, outputs: dict | None) -> None:
        self.send(BodyCardEvent(path, status, seconds, None if outputs is None else self._recorded(pc, outputs)))

    def _recorded(self, pc: PlannedCard, outputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Under persist `all` every output, stored; else the metrics, by their summaries."""
        if self.keep_all:
            return self.write_outputs(pc, outputs, True)
        from cardloop.engine.worker import plain_data

        return {p.name: {"kind": p.kind, "digest": None, "summary": plain_data(outputs.get(p.name))}
                for p in pc.card_type.outputs if p.metric}

    def _progress(self, pc: PlannedCard, progress: dict[str, Any]) -> None:
        self.send(BlockProgress(progress))

    def block_checkpoint(self, pc: PlannedCard, key: str, step: int, extra: dict[str, Any],
                         carried: tuple[Any, ...] = ()) -> None:
        from cardloop.engine.recorder import seen_snapshots, write_progress

        write_progress(self.artifacts, self.records, self.block.run_id, pc.id, key, step,
                       seen_snapshots(self.plan, self.slots, pc) + carried, json.dumps(extra, default=plain))

    def block_stats(self, pc: PlannedCard, stats: list[IterationStats]) -> None:
        """A chunk of what the body cards did: written into the run records here, as the checkpoints are (a long
        block's chunks would otherwise pile up in this worker); without records, sent back with the outcome."""
        if self.records is not None and self.block.run_id is not None:
            from cardloop.engine.recorder import iteration_rows

            self.records.add_iteration_cards(iteration_rows(self.block.run_id, stats))
        else:
            self.stats.extend(s.plain() for s in stats)

    def block_stopped(self, pc: PlannedCard, path: str) -> None:
        self.stopped = path
