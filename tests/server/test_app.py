"""The HTTP API apart from runs: the card catalogue, saved pipelines, validation, examples and the OpenAPI
document, through FastAPI's test client over `create_app` (no network, no token)."""

import re

import pytest
from fastapi.testclient import TestClient

from cardloop.examples import basic_training_loop
from cardloop.server.app import create_app
from tests.server import TESTCLIENT_HOSTS

BUILTIN_CARDS = {"data_load", "data_split", "data_normalize", "model_define", "model_clone", "evaluate",
                 "training_prepare_batch", "training_init_optimizer", "training_zero_grad", "training_forward",
                 "training_loss", "training_backward", "training_optimizer_step", "training_loop",
                 "training_batch_iterator", "training_early_stopping", "training_best_model"}

# Two semantic problems (a config value and a link), as in the README's `cardloop validate` example.
INVALID = {"version": 1, "name": "bad",
           "cards": [{"id": "m", "type": "model_define", "config": {"input_dim": 0}},
                     {"id": "o", "type": "training_init_optimizer", "inputs": {"model": "m.modle"}}]}
# Structurally broken: the file format itself is wrong, so it is not even a pipeline.
MALFORMED = {"version": 1, "cards": [{"id": "m", "type": "model_define", "bogus": 1}, {"type": "evaluate"}]}


@pytest.fixture
def pipelines(tmp_path):
    return tmp_path / "pipelines"


@pytest.fixture
def client(store, pipelines, tmp_path):
    return TestClient(create_app(store, pipelines, tmp_path, None, TESTCLIENT_HOSTS))


@pytest.fixture
def valid(regression_csv):
    """A valid two-batch loop over the fixture CSV, which lies inside the data root (tmp_path)."""
    return basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=2, batch_size=16,
                               layers=(8,), name="tiny").to_dict()


def problem_fields(response):
    return {(p["card"], p["field"]) for p in response.json()["problems"]}


# --- the catalogue --------------------------------------------------------------------------------------------


def test_cards_lists_every_builtin_card_type_with_ports_and_config_schema(client):
    response = client.get("/api/cards")
    assert response.status_code == 200
    body = response.json()
    cards = {card["id"]: card for card in body["cards"]}
    assert BUILTIN_CARDS <= set(cards)
    for card in cards.values():
        assert {"inputs", "outputs", "config_schema"} <= set(card)
    load = cards["data_load"]
    assert load["outputs"][0]["name"] == "dataset" and load["outputs"][0]["kind"] == "dataframe"
    assert "path" in load["config_schema"]["properties"]
    assert load["config_schema"]["additionalProperties"] is False
    forward = cards["training_forward"]
    assert {p["name"] for p in forward["inputs"]} == {"model", "batch_data"}


def test_cards_lists_the_kinds_that_ports_use(client):
    body = client.get("/api/cards").json()
    kinds = body["kinds"]
    assert {"dataframe", "batch", "model", "optimizer", "tensor", "loss", "scalar", "info", "any"} <= set(kinds)
    assert all(isinstance(text, str) and text for text in kinds.values())
    used = {port["kind"] for card in body["cards"] for port in card["inputs"] + card["outputs"]}
    assert used <= set(kinds)


# --- saved pipelines ------------------------------------------------------------------------------------------


def test_no_saved_pipelines_at_first(client, pipelines):
    assert client.get("/api/pipelines").json() == []
    assert pipelines.is_dir()  # create_app makes the folder


def test_put_saves_a_version_1_file_that_get_and_the_list_return(client, pipelines, valid):
    response = client.put("/api/pipelines/tiny", json=valid)
    assert response.status_code == 200
    assert response.json() == {"name": "tiny", "problems": []}
    assert (pipelines / "tiny.yaml").exists()
    assert "version: 1" in (pipelines / "tiny.yaml").read_text()

    listed = client.get("/api/pipelines").json()
    assert [entry["name"] for entry in listed] == ["tiny"]
    assert isinstance(listed[0]["modified"], float)

    got = client.get("/api/pipelines/tiny")
    assert got.status_code == 200
    assert got.json()["version"] == 1 and got.json()["name"] == "tiny"
    assert [card["id"] for card in got.json()["cards"]] == [card["id"] for card in valid["cards"]]
    assert got.json()["cards"][0]["config"]["path"] == valid["cards"][0]["config"]["path"]


def test_a_name_with_yaml_suffix_names_the_same_file(client, pipelines, valid):
    assert client.put("/api/pipelines/tiny.yaml", json=valid).status_code == 200
    assert sorted(p.name for p in pipelines.iterdir()) == ["tiny.yaml"]
    assert client.get("/api/pipelines/tiny").status_code == 200
    assert client.get("/api/pipelines/tiny.yaml").status_code == 200


def test_put_overwrites_a_saved_pipeline(client, valid):
    client.put("/api/pipelines/tiny", json=valid)
    shorter = dict(valid, cards=valid["cards"][:3])
    assert client.put("/api/pipelines/tiny", json=shorter).status_code == 200
    assert len(client.get("/api/pipelines/tiny").json()["cards"]) == 3
    assert len(client.get("/api/pipelines").json()) == 1


def test_put_saves_a_pipeline_with_problems_and_lists_them(client, pipelines):
    response = client.put("/api/pipelines/bad", json=INVALID)
    assert response.status_code == 200
    assert problem_fields(response) == {("m", "input_dim"), ("o", "model")}
    assert (pipelines / "bad.yaml").exists()


def test_put_of_a_malformed_pipeline_is_422_with_problems_naming_cards_and_saves_nothing(client, pipelines):
    response = client.put("/api/pipelines/broken", json=MALFORMED)
    assert response.status_code == 422
    problems = response.json()["detail"]["problems"]
    assert ("m", "bogus") in {(p["card"], p["field"]) for p in problems}
    assert any("card #2 has no 'id'" in p["message"] for p in problems)
    assert any("unknown field 'bogus'" in p["message"] for p in problems)
    assert not (pipelines / "broken.yaml").exists()


@pytest.mark.parametrize("body", [[1, 2], {"cards": []}, {"version": 2, "cards": []}, {"version": 1, "cards": 3}])
def test_put_of_something_that_is_not_a_pipeline_is_422(client, body):
    response = client.put("/api/pipelines/x", json=body)
    assert response.status_code == 422


def test_put_without_a_json_body_is_422(client):
    assert client.put("/api/pipelines/x", content=b"not json",
                      headers={"Content-Type": "application/json"}).status_code == 422


@pytest.mark.parametrize("name", ["-dash", "a b", ".hidden", "x" * 101, "naïve"])
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_bad_pipeline_names_are_400(client, valid, tmp_path, name, method):
    kwargs = {"json": valid} if method == "put" else {}
    response = getattr(client, method)(f"/api/pipelines/{name}", **kwargs)
    assert response.status_code == 400, response.text
    assert "is not valid" in response.json()["detail"]
    assert not list((tmp_path / "pipelines").iterdir())


def test_a_path_with_a_slash_is_no_pipeline_name(client, valid, tmp_path):
    response = client.put("/api/pipelines/..%2Fescaped", json=valid)
    assert response.status_code in (400, 404)
    assert not (tmp_path / "escaped.yaml").exists()


def test_get_and_delete_of_a_missing_pipeline_are_404(client):
    for method in ("get", "delete"):
        response = getattr(client, method)("/api/pipelines/nothing")
        assert response.status_code == 404
        assert "no saved pipeline 'nothing'" in response.json()["detail"]


def test_delete_removes_the_file(client, pipelines, valid):
    client.put("/api/pipelines/tiny", json=valid)
    response = client.delete("/api/pipelines/tiny")
    assert response.status_code == 200 and response.json() == {"deleted": "tiny"}
    assert not (pipelines / "tiny.yaml").exists()
    assert client.get("/api/pipelines/tiny").status_code == 404
    assert client.get("/api/pipelines").json() == []


# --- validation -----------------------------------------------------------------------------------------------


def test_validate_a_valid_pipeline_has_no_problems(client, valid):
    response = client.post("/api/validate", json=valid)
    assert response.status_code == 200 and response.json() == {"problems": []}


def test_validate_reports_every_problem_with_its_card_and_field(client):
    response = client.post("/api/validate", json=INVALID)
    assert response.status_code == 200
    problems = response.json()["problems"]
    assert {(p["card"], p["field"]) for p in problems} == {("m", "input_dim"), ("o", "model")}
    messages = " | ".join(p["message"] for p in problems)
    assert "config field 'input_dim' is 0" in messages and "has no output 'modle'" in messages


def test_validate_names_an_unknown_card_type(client):
    body = {"version": 1, "cards": [{"id": "x", "type": "no_such_card"}]}
    problems = client.post("/api/validate", json=body).json()["problems"]
    assert len(problems) == 1 and problems[0]["card"] == "x" and "no_such_card" in problems[0]["message"]


def test_validate_of_a_malformed_pipeline_is_422_with_problems(client):
    response = client.post("/api/validate", json=MALFORMED)
    assert response.status_code == 422
    assert ("m", "bogus") in {(p["card"], p["field"]) for p in response.json()["detail"]["problems"]}


def test_validate_without_a_body_is_422(client):
    assert client.post("/api/validate").status_code == 422


def test_validate_names_a_data_path_outside_the_data_root(client, tmp_path, valid):
    outside = dict(valid, cards=[dict(valid["cards"][0], config={"path": "/etc/passwd"}), *valid["cards"][1:]])
    problems = client.post("/api/validate", json=outside).json()["problems"]
    assert [(p["card"], p["field"]) for p in problems] == [("data", "path")]
    assert "outside the server's data root" in problems[0]["message"]


# --- examples -------------------------------------------------------------------------------------------------


def test_examples_lists_the_examples_with_descriptions(client):
    response = client.get("/api/examples")
    assert response.status_code == 200
    examples = {entry["name"]: entry["description"] for entry in response.json()}
    assert {"basic-training-loop", "unrolled-training-loop", "one-batch", "training-loop", "warmup-cosine",
            "gradient-accumulation", "two-optimizers", "skip-nonfinite-step"} <= set(examples)
    assert "custom-l1" not in examples  # it needs a card file of examples/cards, which the editor does not load
    assert all(description for description in examples.values())


def test_every_example_the_editor_offers_is_valid(client):
    for entry in client.get("/api/examples").json():
        example = client.get(f"/api/examples/{entry['name']}").json()
        assert client.post("/api/validate", json=example).json() == {"problems": []}, entry["name"]


def test_an_example_is_a_valid_pipeline(client):
    response = client.get("/api/examples/one-batch")
    assert response.status_code == 200
    example = response.json()
    assert example["version"] == 1 and example["name"] == "one-batch"
    ids = [card["id"] for card in example["cards"]]
    assert ids[0] == "data" and "step0" in ids and "step1" not in ids
    assert client.post("/api/validate", json=example).json() == {"problems": []}
    full = client.get("/api/examples/unrolled-training-loop").json()
    assert "step44" in [card["id"] for card in full["cards"]]
    blocks = client.get("/api/examples/basic-training-loop").json()
    assert [card["type"] for card in blocks["cards"]].count("loop") == 1
    assert client.post("/api/validate", json=blocks).json() == {"problems": []}
    looped = client.get("/api/examples/training-loop").json()
    assert [card["type"] for card in looped["cards"]].count("training_loop") == 1
    assert client.post("/api/validate", json=looped).json() == {"problems": []}


def test_an_unknown_example_is_404_naming_the_examples(client):
    response = client.get("/api/examples/nothing")
    assert response.status_code == 404
    assert "no example 'nothing'" in response.json()["detail"] and "one-batch" in response.json()["detail"]


# --- the OpenAPI document and the page ----------------------------------------------------------------------


def test_openapi_document_lists_every_api_path(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "cardloop"
    paths = document["paths"]
    expected = {
        "/api/cards": {"get"},
        "/api/pipelines": {"get"},
        "/api/pipelines/{name}": {"get", "put", "delete"},
        "/api/validate": {"post"},
        "/api/examples": {"get"},
        "/api/examples/{name}": {"get"},
        "/api/runs": {"get", "post"},
        "/api/runs/{run_id}": {"get"},
        "/api/runs/{run_id}/cancel": {"post"},
        "/api/runs/{run_id}/metrics": {"get"},
        "/api/runs/{run_id}/cards/{card_id}/outputs": {"get"},
        "/api/sweeps": {"get"},
        "/api/sweeps/{sweep_id}": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert "/" not in paths
    run_request = document["components"]["schemas"]["RunRequest"]["properties"]
    assert {"pipeline", "name", "executor", "persist", "cache", "only", "until", "from", "threads"} <= set(run_request)


def test_the_root_serves_a_page(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "cardloop" in response.text


def test_the_docs_page_loads_swagger_ui_from_the_server_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: it works without internet
    assert "url: '/openapi.json'" in page.text
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    kinds = {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
    assert sorted(url.rsplit("/", 1)[-1] for url in referenced) == sorted(kinds)
    for url in referenced:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert kinds[url.rsplit("/", 1)[-1]] in asset.headers["content-type"]
        assert len(asset.content) > 500
    assert "SwaggerUIBundle" in client.get(next(url for url in referenced if url.endswith(".js"))).text


def test_swagger_ui_ships_with_its_licence(client):
    licence = client.get("/docs-assets/LICENSE")
    assert licence.status_code == 200 and "Apache License" in licence.text


def test_no_page_loads_redoc_from_a_cdn(client):
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize("path, wrap", [("/api/validate", lambda p: p), ("/api/runs", lambda p: f'{{"pipeline": {p}}}'),
                                        ("/api/pipelines/deep", lambda p: p)])
def test_a_body_nested_50000_levels_deep_is_422_with_the_problem(client, path, wrap):
    deep = '{"version": 1, "cards": ' + "[" * 50_000 + "]" * 50_000 + "}"
    method = client.put if path.startswith("/api/pipelines") else client.post
    response = method(path, content=wrap(deep).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert [p["message"] for p in response.json()["detail"]["problems"]] == [
        "the pipeline nests mappings and lists more than 100 levels deep; a pipeline needs a handful"]


def test_a_saved_file_whose_aliases_blow_up_is_422_to_open_and_to_run(client, pipelines):
    pipelines.mkdir(parents=True, exist_ok=True)
    levels = "".join(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
    (pipelines / "bomb.yaml").write_text("version: 1\ncards:\n- id: a\n  type: data_load\n  config: {path: x.csv}\n"
                                         "  ui:\n    l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + levels)
    for response in (client.get("/api/pipelines/bomb"), client.post("/api/runs", json={"name": "bomb"})):
        assert response.status_code == 422
        assert "uses YAML aliases (*name) that repeat more than 100,000 characters" in response.text
