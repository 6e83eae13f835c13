"""The version-1 file: YAML and JSON read the same, round trips keep everything, structure errors are named."""

import pytest

from cardloop.errors import PipelineInvalid
from cardloop.examples import basic_training_loop
from cardloop.pipeline.fileformat import load_pipeline, pipeline_from_dict


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_saved_pipeline_loads_back_equal(tmp_path, suffix):
    pipeline = basic_training_loop(batches=2)
    pipeline.cards[0].ui = {"position": {"x": 10, "y": 20}}
    loaded = load_pipeline(pipeline.save(tmp_path / f"p{suffix}"))
    assert loaded.to_dict() == pipeline.to_dict()


def test_yaml_and_json_files_of_one_pipeline_are_the_same(tmp_path):
    pipeline = basic_training_loop(batches=1)
    yaml_file = load_pipeline(pipeline.save(tmp_path / "p.yaml"))
    json_file = load_pipeline(pipeline.save(tmp_path / "p.json"))
    assert yaml_file == json_file


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineInvalid, match="does not exist"):
        load_pipeline(tmp_path / "nope.yaml")


def test_broken_yaml_is_a_clear_error(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text("version: 1\ncards: [\n")
    with pytest.raises(PipelineInvalid, match="is not valid YAML"):
        load_pipeline(file)


def test_structural_problems_are_all_reported():
    with pytest.raises(PipelineInvalid) as caught:
        pipeline_from_dict({"version": 1, "extra": 1, "cards": [{"type": "x"}, {"id": "a"}, {"id": "b", "type": "t",
                                                                                        "colour": "red"}]})
    text = str(caught.value)
    assert "unknown top-level field 'extra'" in text
    assert "card #1 has no 'id'" in text
    assert "card 'a' has no 'type'" in text
    assert "card 'b': unknown field 'colour'" in text


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_a_version_that_is_not_a_whole_number_is_refused(version):
    with pytest.raises(PipelineInvalid, match=f"the pipeline's 'version' is {version!r}, not a whole number"):
        pipeline_from_dict({"version": version, "cards": [{"id": "a", "type": "t"}]})


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("value", [5, ["x"], {"a": 1}, True])
def test_a_name_or_description_that_is_not_a_string_is_refused(field, value):
    with pytest.raises(PipelineInvalid, match=f"the pipeline's '{field}' is .*, not a string; quote it"):
        pipeline_from_dict({"version": 1, field: value, "cards": [{"id": "a", "type": "t"}]})


def test_a_16000_card_file_loads_back_equal(tmp_path):
    pipeline = basic_training_loop(batches=2_666)
    assert len(pipeline.cards) == 16_002
    assert load_pipeline(pipeline.save(tmp_path / "p.yaml")).to_dict() == pipeline.to_dict()
