"""Port kinds: which links are legal and how custom cards add a kind."""

import pytest

from cardloop import kinds
from cardloop.kinds import (ANY, BATCH, BUILTIN_KINDS, MODEL, OPTIMIZER, STATE_KINDS, compatible, known_kinds,
                            register_kind)


@pytest.fixture
def no_custom_kinds(monkeypatch):
    """Custom kinds are process-wide: each test starts without any and leaves none behind."""
    monkeypatch.setattr(kinds, "_custom_kinds", {})


def test_a_link_between_equal_kinds_is_compatible():
    assert compatible(MODEL, MODEL)


def test_a_link_between_different_kinds_is_not_compatible():
    assert not compatible(MODEL, OPTIMIZER)


def test_any_output_kind_may_feed_an_input_of_kind_any():
    assert all(compatible(kind, ANY) for kind in BUILTIN_KINDS)


def test_an_output_of_kind_any_feeds_only_an_input_of_kind_any():
    assert not compatible(ANY, BATCH)


def test_the_state_kinds_are_model_optimizer_and_scheduler():
    assert STATE_KINDS == {"model", "optimizer", "scheduler"}


def test_known_kinds_are_the_builtin_kinds_when_none_is_registered(no_custom_kinds):
    assert known_kinds() == BUILTIN_KINDS


def test_a_registered_kind_becomes_known_with_its_description(no_custom_kinds):
    register_kind("image", "a batch of images")
    assert known_kinds()["image"] == "a batch of images"


def test_a_registered_kind_links_only_to_itself_or_any(no_custom_kinds):
    register_kind("image", "a batch of images")
    assert compatible("image", "image") and compatible("image", ANY) and not compatible("image", BATCH)


def test_a_kind_name_that_is_not_an_identifier_is_refused_by_name(no_custom_kinds):
    with pytest.raises(ValueError, match="'my kind' must be an identifier"):
        register_kind("my kind", "spaces are not allowed")
    assert "my kind" not in known_kinds()


def test_registering_a_kind_leaves_the_builtin_table_unchanged(no_custom_kinds):
    before = dict(BUILTIN_KINDS)
    register_kind("image", "a batch of images")
    assert BUILTIN_KINDS == before
