"""What a run returns: its status and its outputs, live where the run left them in this process and loaded from
the store on first access where it did not (cards served from the cache, or run by another process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardloop.engine.plan import Plan, PlannedCard
from cardloop.engine.record_rows import result_metrics
from cardloop.errors import CardFailed
from cardloop.pipeline.blocks import SKIPPED


@dataclass
class RunResult:
    """What a run made. `outputs[card_id][port]` are live values: a model is a torch.nn.Module.

    Training state is live and shared: every card's `model` output that ran in this process is the same
    module, as the run left it. Cards served from the store (cached, or run by another process) load their
    outputs from it on first access.
    """

    run_id: str
    status: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    store_root: Path | None = None
    seconds: float = 0.0
    error: CardFailed | None = None
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    def metrics(self, name: str = "loss_value") -> list[float]:
        """The metric `name` of every card that made one, in script order (a block's: each iteration's)."""
        return result_metrics(self.outputs, name, self.store_root, self.run_id)


class PortValues(dict):
    """One card's outputs. A value dropped after its last use says so; a value the run did not make in this
    process is loaded from the store on first access (`fetch`)."""

    def __init__(self, card_id: str, values: dict[str, Any], released: set[str] = frozenset(),
                 ports: tuple[str, ...] = (), fetch: Callable[[str], Any] | None = None):
        super().__init__(values)
        self.card_id, self.released, self.ports, self.fetch = card_id, released, ports, fetch

    def __missing__(self, port: str) -> Any:
        if port in self.released:
            raise KeyError(f"output '{port}' of card '{self.card_id}' was released after the last card that read "
                           "it; run with keep_outputs=True to keep every value, or read it from the store "
                           "(persist 'all')")
        if self.fetch is not None and port in self.ports:
            value = self[port] = self.fetch(port)
            return value
        raise KeyError(f"card '{self.card_id}' has no output '{port}'")


class ResultOutputs(Mapping):
    """`RunResult.outputs`: card id -> PortValues, in script order, for every card that holds values after
    the run or whose outputs the store holds. Each card's PortValues is made when first asked for, and the
    store is read only for cards whose values are not in this process.

    `earlier` is what the store held before the run (it answers for the cards the run did not execute);
    `after` gives what it holds now (for the executed cards whose values are not here, such as every card the
    process executor ran)."""

    def __init__(self, plan: Plan, slots: list[Any], executed: set[int], earlier: Any,
                 after: Callable[[list[PlannedCard]], Any], loader: Any):
        from cardloop.engine.local import RELEASED

        self._plan, self._slots, self._executed, self._earlier, self._after = plan, slots, executed, earlier, after
        self._loader, self._released = loader, RELEASED
        self._made: dict[str, PortValues | None] = {}
        self._ids: list[str] | None = None
        self._stored_after: Any = None

    def __getitem__(self, card_id: str) -> PortValues:
        if card_id not in self._made:
            pc = self._plan.card(card_id)
            self._made[card_id] = self._port_values(pc) if pc is not None else None
        found = self._made[card_id]
        if found is None:
            raise KeyError(card_id)
        return found

    def __iter__(self) -> Iterator[str]:
        if self._ids is None:
            self._ids = [pc.id for pc in self._plan.cards if pc.id in self]
        return iter(self._ids)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _port_values(self, pc: PlannedCard) -> PortValues | None:
        live, released = {}, set()
        for port, slot in pc.output_slots.items():
            value = self._slots[slot]
            if value is self._released:
                released.add(port)
            elif value is SKIPPED:  # a skipped card's value output (its `when`): none was made
                live[port] = None
            elif value is not None:
                live[port] = value
        if not live and not released and self._stored(pc).prior(pc) is None:
            return None
        return PortValues(pc.id, live, released, tuple(pc.output_slots),
                          fetch=lambda port: _fetch(self._plan, pc, port, self._stored(pc), self._loader))

    def _stored(self, pc: PlannedCard) -> Any:
        """The store's view for a card: as it was before the run, unless the run executed the card."""
        if pc.position not in self._executed:
            return self._earlier
        if self._stored_after is None:
            self._stored_after = self._after([c for c in self._plan.cards if c.position in self._executed
                                              and not self._all_here(c)])
        return self._stored_after

    def _all_here(self, pc: PlannedCard) -> bool:
        return bool(pc.output_slots) and all(self._slots[s] is not None for s in pc.output_slots.values())



def _fetch(plan: Plan, pc: PlannedCard, port: str, stored: Any, loader: Any) -> Any:
    """An output of a card that did not run in this process, from the store."""
    name = pc.state_outputs.get(port)
    if name is not None:
        group = plan.states[name].group
        version = pc.states_made.get(group)
        found = stored.state(group, version, pc) if version is not None else None
        if found is None:
            raise KeyError(f"the state '{name}' as card '{pc.id}' left it is not in the store "
                           "(only checkpoints and the final state are kept under persist 'checkpoint')")
        return loader.state(found, restore_random=False)[name]
    found = stored.value(pc, port)
    if found is None:
        raise KeyError(f"output '{port}' of card '{pc.id}' is not in the store under this run's persist policy")
    return loader.value(found)
