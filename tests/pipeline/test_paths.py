"""Card paths: one execution's `epochs[3].batches[7].fwd`, the static `epochs.batches.fwd`, and malformed text."""

import pytest

from cardloop.errors import PathInvalid
from cardloop.pipeline.paths import CardPath, format_path, parse_path


def test_an_iteration_path_parses_into_its_static_path_and_indices():
    path = parse_path("epochs[3].batches[7].fwd")
    assert path == CardPath("epochs.batches.fwd", (3, 7)) and path.is_iteration
    assert path.loops == ["epochs", "epochs.batches"] and path.parts == ["epochs", "batches", "fwd"]


def test_a_static_path_and_a_top_level_card_id_parse_without_indices():
    assert parse_path("epochs.batches.fwd") == CardPath("epochs.batches.fwd", ())
    assert parse_path("fwd") == CardPath("fwd", ()) and not parse_path("fwd").is_iteration


def test_formatting_gives_back_the_text_that_was_parsed():
    for text in ("epochs[3].batches[7].fwd", "steps[0].loss", "epochs.batches.fwd", "data"):
        assert str(parse_path(text)) == text
    assert format_path("epochs.batches.fwd", (3, 7)) == "epochs[3].batches[7].fwd"
    assert format_path("epochs.fwd") == "epochs.fwd"


def test_formatting_with_the_wrong_number_of_indices_is_refused():
    with pytest.raises(ValueError, match="inside 2 loop"):
        format_path("epochs.batches.fwd", (3,))


@pytest.mark.parametrize(("text", "said"), [
    ("epochs[3]", "ends with an iteration ('epochs[3]'), not a card"),
    ("epochs[3].batches[7]", "ends with an iteration ('batches[7]')"),
    ("epochs[3].batches.fwd", "gives no iteration for block(s) 'batches'"),
    ("epochs[-1].fwd", "has a part 'epochs[-1]' that is neither a card id"),
    ("epochs[x].fwd", "has a part 'epochs[x]'"),
    ("epochs..fwd", "has a part ''"),
    ("3.fwd", "has a part '3'"),
    ("", "is no card path"),
])
def test_malformed_text_is_one_sentence_saying_what_a_path_looks_like(text, said):
    with pytest.raises(PathInvalid) as raised:
        parse_path(text)
    assert said in str(raised.value)
    assert "\n" not in str(raised.value)
