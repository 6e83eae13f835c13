"""Pipeline text to plain data: UTF-8 only, nesting and YAML aliases bounded, YAML read with libyaml when present.

A pipeline file holds mappings, lists, strings, numbers, booleans and null. Everything else is refused with one
sentence naming the file (`source`; without one, "the pipeline"): binary or UTF-16 text, nesting deeper than
MAX_DEPTH, YAML aliases that repeat more than ALIAS_BUDGET characters (a few hundred bytes of nested aliases
expand to gigabytes), YAML tags, and keys that are not strings.
"""

from __future__ import annotations

import codecs
import gc
import json
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from cardloop.errors import PipelineInvalid, Problem

#: Levels of mappings and lists a pipeline may nest (a card's config sits at level 4).
MAX_DEPTH = 100
#: Characters of values that YAML aliases (`*name`) may repeat in one file, beyond the length of the file.
ALIAS_BUDGET = 100_000

_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _TIMESTAMP = _TAG + "map", _TAG + "seq", _TAG + "str", _TAG + "timestamp"
_SCALARS = {_TAG + name for name in ("null", "bool", "int", "float")}
_MERGE_KEYS = {_TAG + "merge", _TAG + "value"}
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def decode(data: bytes, source: str | None = None) -> str:
    """The text of a pipeline file: UTF-8 (a leading byte-order mark is dropped), never binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            _refuse(source, f"is {encoding} text; save it as UTF-8")
    if b"\0" in data:
        _refuse(source, "contains NUL bytes: it is a binary file, or UTF-16 or UTF-32 text; a pipeline file is "
                        "UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        _refuse(source, f"is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} cannot be decoded; "
                        "save it as UTF-8")


def parse_json(data: str | bytes, source: str | None = None) -> Any:
    """JSON text to plain data, refusing nesting deeper than MAX_DEPTH."""
    text = decode(data, source) if isinstance(data, bytes) else data
    try:
        with collector_paused():
            value = json.loads(text)
    except json.JSONDecodeError as exc:
        _refuse(source, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except RecursionError:
        _too_deep(source)
    if _depth_exceeds(value, MAX_DEPTH):
        _too_deep(source)
    return value


def parse_yaml(text: str, source: str | None = None) -> Any:
    """YAML text (one document) to plain data, with libyaml's parser where PyYAML has it."""
    loader = _Loader(text)
    try:
        with collector_paused():
            node = loader.get_single_node()
            return None if node is None else _Builder(loader, source, ALIAS_BUDGET + len(text)).build(node, 1)
    except yaml.MarkedYAMLError as exc:
        if "maximum nesting depth" in str(exc.problem):  # libyaml's own limit, at 1,000 levels
            _too_deep(source)
        where = f" (line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})" \
            if exc.problem_mark else ""
        context = f"{exc.context}: " if exc.context else ""
        _refuse(source, f"is not valid YAML: {context}{exc.problem}{where}")
    except yaml.YAMLError as exc:
        _refuse(source, f"is not valid YAML: {exc}")
    except RecursionError:  # only PyYAML's pure-Python parser recurses; libyaml stops at 1,000 levels itself
        _too_deep(source)
    finally:
        loader.dispose()


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader's parser and composer, with the tag of a plain scalar resolved once per distinct text.
    No path resolvers are registered, so the composer's per-node calls to descend and ascend do nothing."""

    def __init__(self, text: str):
        super().__init__(text)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is not ScalarNode:
            return self.DEFAULT_SEQUENCE_TAG if kind is SequenceNode else self.DEFAULT_MAPPING_TAG
        if not implicit[0]:  # quoted: a string
            return self.DEFAULT_SCALAR_TAG
        tag = self._plain_tags.get(value)
        if tag is None:
            tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


class _Builder:
    """Builds plain data from a composed YAML node graph. A node reached again through an alias (or a `<<` merge)
    is built again, so that the data is a tree; what is so repeated is counted, in characters (a string its
    length, a mapping, list or pair one), and may not pass ALIAS_BUDGET plus the length of the file."""

    def __init__(self, loader: _Loader, source: str | None, allowance: int):
        self.loader, self.source, self.allowance = loader, source, allowance
        self.seen: set[int] = set()

    def build(self, node: Any, depth: int) -> Any:
        key, cls, tag = id(node), type(node), node.tag
        if key in self.seen:
            self._repeat(len(node.value) + 1 if cls is ScalarNode else 1)
        else:
            self.seen.add(key)
        if cls is ScalarNode:
            if tag == _STR or tag == _TIMESTAMP:  # a date is kept as the text it is written as
                return node.value
            if tag in _SCALARS:
                return self.loader.yaml_constructors[tag](self.loader, node)
        elif depth > MAX_DEPTH:
            _too_deep(self.source)
        elif tag == _SEQ and cls is SequenceNode:
            return [self.build(item, depth + 1) for item in node.value]
        elif tag == _MAP and cls is MappingNode:
            return self._mapping(node, depth + 1)
        _refuse(self.source, f"uses the YAML tag '{tag.replace(_TAG, '!!')}' (line {node.start_mark.line + 1}); "
                             "a pipeline file holds mappings, lists, strings, numbers, booleans and null")

    def _mapping(self, node: MappingNode, depth: int) -> dict:
        merged = [value for key, value in node.value if key.tag in _MERGE_KEYS]
        if merged:  # `<<: *name` or `<<: [*a, *b]`: their pairs are counted before they are copied in
            self._repeat(sum(len(part.value) for value in merged
                             for part in (value.value if type(value) is SequenceNode else [value])
                             if type(part) is MappingNode))
            self.loader.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, depth)
            if type(key) is not str:
                _refuse(self.source, f"uses {_shown(key)} as a mapping key (line {key_node.start_mark.line + 1}); "
                                     "keys are strings: quote it")
            mapping[key] = self.build(value_node, depth)
        return mapping

    def _repeat(self, characters: int) -> None:
        self.allowance -= characters
        if self.allowance < 0:
            _refuse(self.source, f"uses YAML aliases (*name) that repeat more than {ALIAS_BUDGET:,} characters of "
                                 "values beyond the length of the file; write the repeated values out, or repeat "
                                 "fewer")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off (unless someone else paused it) while a burst of objects that live
    on is made (a pipeline file's, a plan's): they hold no cycles, and with it on, hundreds of thousands of new
    objects set off collection after collection, passing over them again and again and freeing nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether mappings and lists nest deeper than `limit` levels (iteratively: no recursion to run out of)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _shown(key: Any) -> str:
    if isinstance(key, (dict, list)):
        return f"a {'mapping' if isinstance(key, dict) else 'list'}"
    return f"the {type(key).__name__} {key!r}" if key is not None else "null"


def _too_deep(source: str | None) -> NoReturn:
    _refuse(source, f"nests mappings and lists more than {MAX_DEPTH} levels deep; a pipeline needs a handful")


def _refuse(source: str | None, what: str) -> NoReturn:
    raise PipelineInvalid([Problem(f"{f'{source!r}' if source else 'the pipeline'} {what}")], source)
