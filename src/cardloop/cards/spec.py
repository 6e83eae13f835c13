"""The card SDK: what a card type declares, and the `@card` decorator that declares it.

A card type is a plain function with named inputs (its parameters) and named outputs (the keys of the
dict it returns). Ports, config model and metadata are declared once, on the decorator; the function's
parameters must match the input ports, which registration checks.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import marshal
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict

from cardloop.kinds import ANY, STATE_KINDS, known_kinds


class CardConfig(BaseModel):
    """Base class of every card's config model: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoConfig(CardConfig):
    """The config of a card type that takes none."""


#: The error type of a rule between a config's fields, whose message validation shows as it is, after
#: "config field '<field>'" (raise `config_rule(...)` from a field validator, so that the error names the field).
CONFIG_RULE = "config_rule"


def config_rule(message: str) -> Exception:
    """The error a config's field validator raises when the field breaks a rule between fields: `message`
    continues "config field '<field>' ..." (e.g. "is required for scheduler_type 'step'")."""
    from pydantic_core import PydanticCustomError

    return PydanticCustomError(CONFIG_RULE, message)


@dataclass(frozen=True)
class Port:
    """A named input or output of a card type.

    `state_of` marks an output that continues the training state received on the named input port
    (the same object, possibly changed), rather than making a new state.
    `metric` marks a scalar output recorded as a metric (and shown by progress bars).
    `needs_graph` marks an input whose value must carry its autograd graph (a loss for Backward): when
    that value was made in another process, its lineage is recomputed in this one first (docs/design.md §4).
    `items` marks an iterator output: its value has `len()` and `item(i)`, a dict with one value per item port;
    a loop block `over` it runs once per item, with the item ports inside its body (docs/blocks.md).
    """

    name: str
    kind: str
    description: str = ""
    required: bool = True
    state_of: str | None = None
    metric: bool = False
    needs_graph: bool = False
    items: tuple[Port, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "kind": self.kind, "description": self.description,
                "required": self.required}
        if self.state_of:
            data["state_of"] = self.state_of
        if self.metric:
            data["metric"] = True
        if self.needs_graph:
            data["needs_graph"] = True
        if self.items:
            data["items"] = [item.to_json() for item in self.items]
        return data


@dataclass(frozen=True)
class CardContext:
    """What a running card may know about itself: its id and where its inputs came from; and, for a card
    that runs long, where to report its progress."""

    card_id: str
    card_type: str
    sources: Mapping[str, str] = field(default_factory=dict)
    #: for each input port, the (card id, card type) of the cards above this one that read the same value
    earlier_readers: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    #: `report(step, steps, metrics)`: how far a long card has come (a progress bar shows it); None when
    #: nothing listens, so a card checks before it reports
    report: Callable[[int, int, dict[str, float]], None] | None = None
    #: `checkpoint(step, extra)`: offered after each of a long card's own steps; when a checkpoint is due
    #: (the run's checkpoint interval), the run stores the card's training state as it is now, with `extra`
    #: (JSON-able: what the card needs to go on, such as its losses so far). None where no run records it.
    checkpoint: Callable[[int, dict[str, Any]], None] | None = None
    #: `(step, extra)` when this card resumes from such a checkpoint: its training state inputs have been
    #: restored to what they were after `step` steps, and it goes on from there
    resumed: tuple[int, dict[str, Any]] | None = None

    def source(self, port: str) -> str:
        """The `card.port` that feeds input `port` (empty if unconnected)."""
        return self.sources.get(port, "")


@dataclass(frozen=True)
class CardType:
    """A registered kind of card."""

    id: str
    title: str
    category: str
    description: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    config_model: type[CardConfig]
    run: Callable[..., Mapping[str, Any]]
    deterministic: bool = True
    version: int = 1
    resources: Mapping[str, float] = field(default_factory=dict)
    mutates_state: bool = False
    wants_context: bool = False
    source_files: Callable[[Any], list] | None = None
    code_files: Callable[[Any], list] | None = None

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    @property
    def code_hash(self) -> str:
        """A digest of the file that defines the run function and, for a card of an installed card pack (or
        built in), of the pack's version: a changed card, or a changed helper it calls, is never served from
        cache."""
        return _code_hash(self.run)

    def to_json(self) -> dict[str, Any]:
        """The catalogue entry the editor and `cardloop cards --json` read."""
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "description": self.description,
            "inputs": [p.to_json() for p in self.inputs],
            "outputs": [p.to_json() for p in self.outputs],
            "config_schema": self.config_model.model_json_schema(),
            "deterministic": self.deterministic,
            "version": self.version,
            "resources": dict(self.resources),
            "mutates_state": self.mutates_state,
        }


RESERVED_PARAMETERS = ("config", "ctx")


@functools.lru_cache(maxsize=None)
def _code_hash(run: Callable) -> str:
    from cardloop.cards.registry import pack_version

    digest = hashlib.sha256(_source_digest(run))
    pack = pack_version(getattr(run, "__module__", None) or "")
    if pack is not None:
        digest.update(f"\0{pack}".encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _source_digest(run: Callable) -> bytes:
    """The sha256 of the whole file that defines `run`, so that editing a helper it calls changes its cache
    key too; of the function's own source or compiled code where it has no file. Taken when the card is
    declared: the code that runs is the code that was read then."""
    try:
        path = inspect.getsourcefile(run)
    except TypeError:
        path = None
    if path is not None and os.path.isfile(path):
        return _file_digest(path)
    try:
        source = inspect.getsource(run).encode()
    except (OSError, TypeError):  # defined without a source file: hash the compiled code instead
        source = marshal.dumps(run.__code__) if hasattr(run, "__code__") else repr(run).encode()
    return hashlib.sha256(source).digest()


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> bytes:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).digest()


def _check_ports(type_id: str, run: Callable, inputs: tuple[Port, ...], outputs: tuple[Port, ...]) -> bool:
    """Check that the run function's signature matches the declared input ports; return wants_context."""
    kinds = known_kinds()
    for port in (*inputs, *outputs, *(item for port in outputs for item in port.items)):
        if port.kind not in kinds:
            raise ValueError(f"card type '{type_id}': port '{port.name}' has unknown kind '{port.kind}'; "
                             f"known kinds: {', '.join(sorted(kinds))}")
    for port in inputs:
        if port.items:
            raise ValueError(f"card type '{type_id}': input '{port.name}' declares items; only an output can be "
                             "an iterator")
    for port in outputs:
        if port.items:
            _check_items(type_id, port)
    for port in inputs:
        if port.name in RESERVED_PARAMETERS:
            raise ValueError(f"card type '{type_id}': an input port may not be named '{port.name}' "
                             f"(reserved: {', '.join(RESERVED_PARAMETERS)})")
    for port in outputs:
        if port.state_of is not None:
            source = next((p for p in inputs if p.name == port.state_of), None)
            if source is None or source.kind not in STATE_KINDS:
                raise ValueError(f"card type '{type_id}': output '{port.name}' continues the state of "
                                 f"'{port.state_of}', which is not a state input of this card")
            if source.kind != port.kind:
                raise ValueError(f"card type '{type_id}': output '{port.name}' ({port.kind}) cannot continue "
                                 f"input '{source.name}' of kind '{source.kind}'")
    for ports, side in ((inputs, "input"), (outputs, "output")):
        names = [p.name for p in ports]
        if len(set(names)) != len(names):
            raise ValueError(f"card type '{type_id}' declares an {side} port twice: {names}")
    params = inspect.signature(run).parameters
    wants_context = "ctx" in params
    expected = {"config", *(p.name for p in inputs)} | ({"ctx"} if wants_context else set())
    if set(params) != expected:
        raise ValueError(f"card type '{type_id}': run function parameters {sorted(params)} must be "
                         f"'config', optionally 'ctx', and the input ports {[p.name for p in inputs]}")
    return wants_context


def _check_items(type_id: str, port: Port) -> None:
    """An iterator output has a kind of its own (not `any`, not training state), and its item ports have
    distinct identifier names and plain value kinds."""
    if port.kind == ANY or port.kind in STATE_KINDS:
        raise ValueError(f"card type '{type_id}': iterator output '{port.name}' needs a kind of its own for its "
                         f"iterator, not '{port.kind}'")
    names = [item.name for item in port.items]
    for item in port.items:
        if not item.name.isidentifier():
            raise ValueError(f"card type '{type_id}': output '{port.name}' has an item port named {item.name!r}; "
                             "item port names must be identifiers")
        if item.kind in STATE_KINDS or item.state_of or item.items:
            raise ValueError(f"card type '{type_id}': item port '{port.name}.{item.name}' must carry a plain "
                             f"value, not training state or another iterator")
    if len(set(names)) != len(names):
        raise ValueError(f"card type '{type_id}': output '{port.name}' declares an item port twice: {names}")


def card(
    id: str,
    *,
    title: str,
    category: str,
    description: str = "",
    inputs: tuple[Port, ...] | list[Port] = (),
    outputs: tuple[Port, ...] | list[Port] = (),
    config: type[CardConfig] = NoConfig,
    deterministic: bool = True,
    version: int = 1,
    resources: Mapping[str, float] | None = None,
    mutates_state: bool = False,
    source_files: Callable[[Any], list] | None = None,
    code_files: Callable[[Any], list] | None = None,
    registry: Any = None,
) -> Callable[[Callable[..., Mapping[str, Any]]], CardType]:
    """Declare and register a card type.

    The decorated function is called as `run(config=..., <input ports>...)` (plus `ctx=` when it asks for
    it) and returns a dict with one entry per output port. `mutates_state` says the card changes the
    training state it receives (weights, gradients, optimizer state, RNG). `source_files(config)` lists
    the files a data card reads, whose content hashes enter its cache key. `code_files(config)` lists the files
    of user code a card runs by its config (the card file of `model_define`'s `module` class): their content
    hashes enter its cache key too, and the process executor's workers load those that are card files.
    """

    def decorate(run: Callable[..., Mapping[str, Any]]) -> CardType:
        ins, outs = tuple(inputs), tuple(outputs)
        wants_context = _check_ports(id, run, ins, outs)
        _source_digest(run)
        card_type = CardType(
            id=id, title=title, category=category, description=description or (run.__doc__ or "").strip(),
            inputs=ins, outputs=outs, config_model=config, run=run, deterministic=deterministic,
            version=version, resources=dict(resources or {}), mutates_state=mutates_state,
            wants_context=wants_context, source_files=source_files, code_files=code_files,
        )
        from cardloop.cards.registry import default_registry

        (registry if registry is not None else default_registry()).register(card_type)
        return card_type

    return decorate
