"""Reading pipeline files: UTF-8 only, nesting and YAML aliases bounded, YAML tags refused, each a sentence naming
the file; real files through `load_pipeline`, as the CLI and the server read them."""

import gc

import pytest
import yaml

from cardloop.errors import PipelineInvalid
from cardloop.pipeline import parsing
from cardloop.pipeline.fileformat import load_pipeline

CARD = "version: 1\nname: p\ncards:\n- id: a\n  type: data_load\n  config: {path: x.csv}\n"


def laughs(levels: int, where: str) -> str:
    """Nine aliases of nine aliases of ... nine values: 9**levels values from a few hundred bytes."""
    lines = ["  l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return CARD + f"  {where}:\n" + "\n".join("  " + line for line in lines) + "\n"


def refused(tmp_path, name: str, content: str | bytes) -> str:
    """The one problem with which load_pipeline refuses a file of this content."""
    file = tmp_path / name
    file.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PipelineInvalid) as caught:
        load_pipeline(file)
    assert len(caught.value.problems) == 1
    message = caught.value.problems[0].message
    assert message.startswith(f"'{file}' ")
    return message


# --- YAML aliases --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["config", "ui"])
def test_aliases_that_expand_exponentially_are_refused(tmp_path, where):
    content = laughs(8, where)
    assert len(content) < 700  # 43 million values once expanded
    assert "uses YAML aliases (*name) that repeat more than 100,000 characters" in refused(tmp_path, "p.yaml", content)


def test_a_long_string_repeated_by_aliases_is_refused(tmp_path):
    content = f"version: 1\nname: &n {'x' * 10_000}\ncards: [{', '.join(['*n'] * 100)}]\n"
    assert "uses YAML aliases" in refused(tmp_path, "p.yaml", content)


def test_merge_keys_that_repeat_too_many_pairs_are_refused(tmp_path):
    defaults = ", ".join(f"k{i}: 1" for i in range(5_000))
    content = f"version: 1\ndefaults: &d {{{defaults}}}\ncards:\n" + "- {<<: *d}\n" * 5_000
    assert "uses YAML aliases" in refused(tmp_path, "p.yaml", content)


def test_a_recursive_alias_is_refused(tmp_path):
    assert "nests mappings and lists more than 100 levels deep" in refused(tmp_path, "p.yaml", "a: &a [*a]\n")


def test_a_few_aliases_and_merges_load_as_separate_copies(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("version: 1\ncards:\n- {id: a, type: data_load, config: &c {path: x.csv}}\n"
                    "- {id: b, type: data_load, config: *c}\n"
                    "- {id: c, type: data_load, config: {<<: *c, target_columns: [y]}}\n")
    a, b, c = load_pipeline(file).cards
    assert a.config == b.config == {"path": "x.csv"} and c.config == {"path": "x.csv", "target_columns": ["y"]}
    a.config["path"] = "changed.csv"
    assert b.config["path"] == c.config["path"] == "x.csv"


# --- encodings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, expected", [("utf-16", "is UTF-16 text; save it as UTF-8"),
                                                ("utf-32", "is UTF-32 text; save it as UTF-8"),
                                                ("utf-16-le", "contains NUL bytes")])
def test_utf16_and_utf32_files_are_refused(tmp_path, encoding, expected):
    assert expected in refused(tmp_path, "p.yaml", CARD.encode(encoding))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_binary_file_is_refused(tmp_path, suffix):
    assert "contains NUL bytes: it is a binary file" in refused(tmp_path, f"p{suffix}", bytes(range(256)) * 4)


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte_and_line(tmp_path):
    message = refused(tmp_path, "p.yaml", (CARD + "description: café\n").encode("latin-1"))
    assert "is not UTF-8 text: byte 0xe9 on line 7 cannot be decoded" in message


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_bytes((CARD + "description: café\n").encode("utf-8-sig"))
    assert load_pipeline(file).description == "café"


# --- nesting -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [101, 999, 50_000])
def test_yaml_nested_deeper_than_100_levels_is_refused(tmp_path, levels):
    content = "version: 1\ncards: " + "[" * levels + "]" * levels + "\n"
    assert "nests mappings and lists more than 100 levels deep" in refused(tmp_path, "p.yaml", content)


@pytest.mark.parametrize("levels", [101, 50_000])
def test_json_nested_deeper_than_100_levels_is_refused(tmp_path, levels):
    content = '{"version": 1, "cards": ' + "[" * levels + "]" * levels + "}"
    assert "nests mappings and lists more than 100 levels deep" in refused(tmp_path, "p.json", content)


def test_nesting_of_100_levels_is_read():
    assert parsing.parse_yaml("[" * 100 + "]" * 100) == parsing.parse_json("[" * 100 + "]" * 100)


# --- what a pipeline file may hold ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, tag", [("!!python/object/apply:os.system [ls]", "!!python/object/apply:os.system"),
                                        ("!!set {a: null}", "!!set"), ("!!binary aGVsbG8=", "!!binary")])
def test_yaml_tags_are_refused(tmp_path, value, tag):
    message = refused(tmp_path, "p.yaml", f"version: 1\ncards: []\ndescription: {value}\n")
    assert f"uses the YAML tag '{tag}' (line 3)" in message


def test_a_key_that_is_not_a_string_is_refused(tmp_path):
    message = refused(tmp_path, "p.yaml", CARD + "  inputs: {1: a.b}\n")
    assert "uses the int 1 as a mapping key (line 7); keys are strings: quote it" in message


def test_a_date_stays_the_text_it_is_written_as():
    assert parsing.parse_yaml("name: 2024-01-31") == {"name": "2024-01-31"}


def test_numbers_booleans_and_null_are_read_as_yaml_reads_them():
    text = "a: 1\nb: 0x10\nc: 1.5e+3\nd: true\ne: off\nf: ~\ng: '1'\nh: [.inf, -0.0]\n"
    assert parsing.parse_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("suffix, content, expected",
                         [(".yaml", "version: 1\ncards: [\n", "is not valid YAML: while parsing a flow node"),
                          (".yaml", "a: 1\n---\nb: 2\n", "is not valid YAML: expected a single document"),
                          (".json", '{"version": 1,', "is not valid JSON: Expecting property name enclosed in "
                                                      "double quotes (line 1, column 15)")])
def test_broken_yaml_and_json_are_one_sentence_with_the_line(tmp_path, suffix, content, expected):
    message = refused(tmp_path, f"p{suffix}", content)
    assert expected in message and "\n" not in message


def test_yaml_is_read_with_libyaml_where_pyyaml_has_it():
    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert issubclass(parsing._Loader, yaml.CSafeLoader)


@pytest.mark.parametrize("content", [CARD, laughs(8, "ui")])
def test_the_garbage_collector_is_on_again_after_a_file_is_read(tmp_path, content):
    file = tmp_path / "p.yaml"
    file.write_text(content)
    try:
        load_pipeline(file)
    except PipelineInvalid:
        pass
    assert gc.isenabled()
