"""`module: "name:Class"` on `model_define`: a user's nn.Module class, from a card file loaded in this process or a
module of an installed card pack, and from nowhere else.

Why this is safe: a pipeline, or a stored model's recipe, names a class; it never chooses code to import. Only code
this process already runs can be named: a card file loaded with `--cards` (named by its file name without `.py`) or
a module of an installed card pack (a package whose `cardloop.cards` entry point cardloop loaded). `os:system`,
`builtins:eval` or any other module is refused, and so is anything but an nn.Module subclass defined in the module
named. A stored model whose card file is not loaded is refused with how to load it: a recipe never makes cardloop
load a file.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)", re.ASCII)
LOAD_HINT = "load the card file that defines it with --cards FILE (in Python: cardloop.cards.registry.load_card_file)"


class ModuleRuleError(ValueError):
    """A `module` that names no class cardloop may build, or a class that its `kwargs` do not build."""


@dataclass(frozen=True)
class ModuleSource:
    """Where a `module` name points: a loaded card file, or a module of an installed card pack."""

    name: str  # what the user wrote before the colon
    module: str  # the module's name in sys.modules
    card_file: str | None = None
    pack: str | None = None  # "distribution version"

    def record(self) -> dict[str, str]:
        """What a stored recipe keeps of the source: the card file's path or the pack's version."""
        return {"card_file": self.card_file} if self.card_file else {"pack": str(self.pack)}

    def describe(self) -> str:
        return f"card file {self.card_file}" if self.card_file else f"module '{self.name}' of card pack {self.pack}"


def split_spec(spec: str) -> tuple[str, str]:
    """(module name, class name) of `name:Class`; ModuleRuleError for anything else."""
    match = SPEC.fullmatch(spec)
    if match is None:
        raise ModuleRuleError("write it as '<card file or card pack module>:<class name>', in letters, digits and '_' "
                              "(a card file is named by its file name without .py), e.g. 'my_models:Net' for class "
                              "Net of a card file my_models.py, or 'my_pack.models:Net' for a card pack's")
    return match.group(1), match.group(2)


def find_source(spec: str) -> ModuleSource:
    """The loaded card file or installed card pack that `spec` names. Imports nothing (a config can check it)."""
    from cardloop.cards.registry import installed_packs, loaded_card_files

    name, _ = split_spec(spec)
    files = sorted({path for path in loaded_card_files().values() if Path(path).stem == name})
    packs = installed_packs()
    pack = packs.get(name.partition(".")[0])
    if len(files) > 1:
        raise ModuleRuleError(f"'{name}' names {len(files)} loaded card files ({', '.join(files)}); rename one")
    if files and pack:
        raise ModuleRuleError(f"'{name}' names both card file {files[0]} and installed card pack {pack}; rename the "
                              "card file")
    if files:
        module = next(m for m, path in loaded_card_files().items() if path == files[0])
        return ModuleSource(name, module, card_file=files[0])
    if pack:
        return ModuleSource(name, name, pack=pack)
    loaded = ", ".join(f"{Path(p).stem} ({p})" for p in sorted(loaded_card_files().values())) or "none"
    raise ModuleRuleError(f"'{name}' is neither a card file loaded in this process nor an installed card pack, and a "
                          f"model class can come only from those (loaded card files: {loaded}; installed card packs: "
                          f"{', '.join(sorted(packs)) or 'none'}); {LOAD_HINT} and write '<file name without .py>:"
                          "<class name>'")


def code_file(spec: str) -> str | None:
    """The file that defines `spec`'s module (its code, for a cache key), or None where it names none."""
    try:
        source = find_source(spec)
        if source.card_file:
            return source.card_file
        found = importlib.util.find_spec(source.module)  # imports the pack's packages, which its entry point did
    except (ModuleRuleError, ImportError, ValueError):
        return None
    return found.origin if found is not None else None


def resolve_class(spec: str) -> type:
    """The nn.Module subclass that `spec` names, defined in a loaded card file or an installed card pack."""
    import torch.nn as nn

    source = find_source(spec)
    _, class_name = split_spec(spec)
    if source.card_file:
        module = sys.modules[source.module]
    else:
        try:
            module = importlib.import_module(source.module)
        except Exception as error:  # the pack's own code failed: name it
            raise ModuleRuleError(f"{source.describe()} failed to import: {type(error).__name__}: {error}") from error
    defined = sorted(name for name, value in vars(module).items()
                     if _is_module_class(value, nn) and value.__module__ == source.module)
    valid = f"its nn.Module classes: {', '.join(defined) or 'none'}"
    found = vars(module).get(class_name)
    if found is None:
        raise ModuleRuleError(f"{source.describe()} defines no '{class_name}'; {valid}")
    if not _is_module_class(found, nn):
        raise ModuleRuleError(f"'{class_name}' of {source.describe()} is a {type(found).__name__}, not an nn.Module "
                              f"subclass; {valid}")
    if found.__module__ != source.module:
        raise ModuleRuleError(f"'{class_name}' of {source.describe()} is {found.__module__}.{found.__qualname__}, "
                              f"which it imports rather than defines; name the module that defines it, or {valid}")
    return found


def _is_module_class(value: Any, nn: Any) -> bool:
    try:
        return isinstance(value, type) and issubclass(value, nn.Module)
    except TypeError:  # a generic alias such as list[int] passes as a type but not to issubclass
        return False


def build_user_module(spec: str, kwargs: dict[str, Any], recorded: dict[str, str] | None = None) -> Any:
    """`Class(**kwargs)` for the class `spec` names. `recorded`: the source a stored recipe kept, to say what to
    load or install when that source is missing here."""
    from cardloop.cards.registry import installed_packs, loaded_card_files

    try:
        find_source(spec)
    except ModuleRuleError as error:
        card_file, pack = (recorded or {}).get("card_file"), (recorded or {}).get("pack")
        if card_file and card_file not in loaded_card_files().values():
            raise ModuleRuleError(f"model class '{spec}' (config field 'module') comes from card file {card_file}, "
                                  f"which is not loaded in this process; load it with --cards {card_file} (in Python: "
                                  "cardloop.cards.registry.load_card_file)") from None
        if pack and pack.split()[0] not in {installed.split()[0] for installed in installed_packs().values()}:
            raise ModuleRuleError(f"model class '{spec}' (config field 'module') comes from card pack {pack}, which "
                                  "is not installed here; install it") from None
        raise ModuleRuleError(f"model class '{spec}' (config field 'module'): {error}") from None
    try:
        cls = resolve_class(spec)
    except ModuleRuleError as error:
        raise ModuleRuleError(f"model class '{spec}' (config field 'module'): {error}") from None
    try:
        return cls(**kwargs)
    except Exception as error:  # the user's constructor refused its kwargs: say which
        raise ModuleRuleError(f"model class '{spec}' could not be built with config field 'kwargs' {kwargs}: "
                              f"{type(error).__name__}: {error}") from error
