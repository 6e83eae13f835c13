"""The card registry: built-in cards, entry-point card packs and card files given by path."""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Iterable, Iterator

from cardloop.cards.spec import CardType
from cardloop.errors import RegistryError

ENTRY_POINT_GROUP = "cardloop.cards"
BUILTIN_MODULES = (
    "cardloop.cards.data",
    "cardloop.cards.model",
    "cardloop.cards.training",
    "cardloop.cards.schedulers",
    "cardloop.cards.training_loop",
    "cardloop.cards.loss_combine",
    "cardloop.cards.regularization",
    "cardloop.cards.batch_iterator",
    "cardloop.cards.early_stopping",
    "cardloop.cards.freeze",
    "cardloop.cards.best_model",
    "cardloop.cards.evaluate",
    "cardloop.cards.blocks",
)


class Registry:
    """Card types by id."""

    def __init__(self) -> None:
        self._types: dict[str, CardType] = {}

    def register(self, card_type: CardType) -> None:
        existing = self._types.get(card_type.id)
        if existing is not None and _origin(existing) != _origin(card_type):
            raise RegistryError(f"card type '{card_type.id}' is already registered by {_origin(existing)}; "
                                f"{_origin(card_type)} cannot register it again")
        self._types[card_type.id] = card_type

    def get(self, type_id: str) -> CardType:
        try:
            return self._types[type_id]
        except KeyError:
            raise RegistryError(self.unknown_message(type_id)) from None

    def __contains__(self, type_id: str) -> bool:
        return type_id in self._types

    def __iter__(self) -> Iterator[CardType]:
        return iter(sorted(self._types.values(), key=lambda t: (t.category, t.id)))

    def __len__(self) -> int:
        return len(self._types)

    def unknown_message(self, type_id: str) -> str:
        close = difflib.get_close_matches(type_id, list(self._types), n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else \
            "run `cardloop cards` to list the known card types, or load the file that defines it with --cards"
        return f"unknown card type '{type_id}'; {hint}"

    def catalogue(self) -> list[dict]:
        """Every card type as JSON (ports, kinds, config JSON Schema)."""
        return [t.to_json() for t in self]


def _origin(card_type: CardType) -> str:
    run = card_type.run
    return f"{run.__module__}.{run.__qualname__}"


_default: Registry | None = None
_card_files: dict[str, str] = {}  # module name -> path of every card file loaded in this process


def default_registry() -> Registry:
    """The process-wide registry, with the built-in cards and installed card packs loaded on first use."""
    global _default
    if _default is None:
        _default = Registry()
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        load_entry_points()
    return _default


_pack_versions: dict[str, str] = {}  # top-level module of an installed card pack -> "distribution version"


def pack_version(module: str) -> str | None:
    """The distribution and version of the installed card pack that `module` belongs to (cardloop's own for
    the built-in cards), or None for a card file."""
    top = module.partition(".")[0]
    if top == "cardloop":
        return _cardloop_version()
    return _pack_versions.get(top)


@functools.lru_cache(maxsize=1)
def _cardloop_version() -> str | None:
    try:
        return f"cardloop {version('cardloop')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return None


def load_entry_points() -> None:
    """Import every card pack installed under the `cardloop.cards` entry-point group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None:
            _pack_versions[ep.module.partition(".")[0]] = f"{ep.dist.name} {ep.dist.version}"
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, CardType):
                loaded()
        except Exception as exc:  # name the broken pack rather than fail somewhere obscure
            raise RegistryError(f"card pack '{ep.name}' ({ep.value}) failed to load: {exc}") from exc


def load_card_file(path: str | Path) -> None:
    """Import a Python file of card definitions (`--cards path/to/my_cards.py`)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise RegistryError(f"card file '{path}' does not exist")
    default_registry()
    module_name = f"cardloop_user_cards.{file.stem}_{abs(hash(str(file))):x}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise RegistryError(f"card file '{path}' is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise RegistryError(f"card file '{path}' failed to load: {type(exc).__name__}: {exc}") from exc
    _card_files[module_name] = str(file)


def loaded_card_files() -> dict[str, str]:
    """{module name: resolved path} of every card file loaded in this process."""
    return dict(_card_files)


def installed_packs() -> dict[str, str]:
    """{top-level module: "distribution version"} of every installed card pack (entry points loaded first)."""
    default_registry()
    return dict(_pack_versions)


def loaded_among(paths: Iterable[str | Path]) -> list[str]:
    """Those of `paths` that are card files loaded in this process (resolved)."""
    loaded = set(_card_files.values())
    return [str(Path(path).resolve()) for path in paths if str(Path(path).resolve()) in loaded]


def card_files_of(card_types: Iterable[CardType]) -> list[str]:
    """The card files (resolved paths) that this process loaded and that define these card types: what the
    process executor's workers load, however they were loaded here (`--cards`, `cards=`, or `load_card_file`)."""
    modules = dict.fromkeys(card_type.run.__module__ for card_type in card_types)
    return [_card_files[module] for module in modules if module in _card_files]
