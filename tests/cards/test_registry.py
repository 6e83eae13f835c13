"""The card registry: lookup, conflicts, the built-in catalogue (the guide's public contract), card files,
entry-point card packs and `cardloop cards`."""

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from cardloop.cards import registry as registry_module
from cardloop.cards import spec as spec_module
from cardloop.cards.registry import (Registry, card_files_of, default_registry, load_card_file, load_entry_points,
                                     loaded_among, loaded_card_files)
from cardloop.cards.spec import CardType, NoConfig
from cardloop.errors import RegistryError


@pytest.fixture
def isolated_default_registry(monkeypatch):
    """A copy of the default registry, built-ins included, that a test may add to; the real one comes back after."""
    isolated = Registry()
    for card_type in default_registry():
        isolated.register(card_type)
    monkeypatch.setattr(registry_module, "_default", isolated)
    return isolated


pytestmark = pytest.mark.usefixtures("isolated_default_registry")

BUILTIN_IDS = {"data_load", "data_split", "data_normalize", "model_define", "model_clone", "evaluate",
               "training_prepare_batch", "training_init_optimizer", "training_zero_grad", "training_forward",
               "training_loss", "training_backward", "training_optimizer_step", "training_loop",
               "training_batch_iterator", "training_early_stopping", "training_best_model"}

#: /work/shared/seed/training-loop-components-guide.md: card type -> (inputs, outputs, config defaults).
GUIDE = {
    "training_prepare_batch": (["train_dataset"], ["batch_data", "batch_info"],
                               {"batch_index": 0, "batch_size": 32}),
    "training_init_optimizer": (["model"], ["optimizer"],
                                {"optimizer_type": "adam", "learning_rate": 0.001, "weight_decay": 0.0}),
    "training_zero_grad": (["optimizer"], ["optimizer"], {}),
    "training_forward": (["model", "batch_data"], ["predictions", "model"], {"batch_index": 0}),
    "training_loss": (["predictions", "batch_data"], ["loss", "loss_value"], {"loss_type": "mse"}),
    "training_backward": (["loss", "model"], ["model", "gradients_computed"], {"retain_graph": False}),
    "training_optimizer_step": (["optimizer", "model"], ["model", "optimizer", "step_info"], {"gradient_clip": 0}),
}
GUIDE_CHOICES = {
    ("training_init_optimizer", "optimizer_type"): ["adam", "sgd", "rmsprop"],
    ("training_loss", "loss_type"): ["mse", "mae", "huber"],
}

USER_CARD = '''
from cardloop import Port, card
from cardloop.kinds import SCALAR


@card("user_answer", title="Answer", category="user", outputs=[Port("value", SCALAR)])
def answer(config):
    return {"value": 42}
'''


def run_a(config):
    return {}


def run_b(config):
    return {}


def bare_type(run, type_id: str = "echo", category: str = "test") -> CardType:
    return CardType(id=type_id, title="Echo", category=category, description="", inputs=(), outputs=(),
                    config_model=NoConfig, run=run)


def catalogue_entry(type_id: str) -> dict:
    return next(entry for entry in default_registry().catalogue() if entry["id"] == type_id)


# --- lookup and conflicts ------------------------------------------------------------------------------------


def test_a_registered_card_type_is_found_by_its_id():
    registry = Registry()
    echo = bare_type(run_a)
    registry.register(echo)
    assert "echo" in registry and registry.get("echo") is echo and len(registry) == 1


def test_an_unknown_type_suggests_the_close_matches():
    with pytest.raises(RegistryError, match=r"unknown card type 'training_forwrd'; did you mean 'training_forward'"):
        default_registry().get("training_forwrd")


def test_an_unknown_type_without_close_matches_points_to_cardloop_cards():
    with pytest.raises(RegistryError, match=r"unknown card type 'zzz'; run `cardloop cards`"):
        default_registry().get("zzz")


def test_registering_an_id_again_from_another_function_is_refused_naming_both():
    registry = Registry()
    registry.register(bare_type(run_a))
    with pytest.raises(RegistryError, match=r"'echo' is already registered by tests\.cards\.test_registry\.run_a; "
                                            r"tests\.cards\.test_registry\.run_b cannot register it again"):
        registry.register(bare_type(run_b))


def test_a_refused_registration_keeps_the_first_card_type():
    registry = Registry()
    first = bare_type(run_a)
    registry.register(first)
    with pytest.raises(RegistryError):
        registry.register(bare_type(run_b))
    assert registry.get("echo") is first


def test_registering_an_id_again_from_the_same_function_is_allowed():
    registry = Registry()
    registry.register(bare_type(run_a))
    registry.register(bare_type(run_a))
    assert len(registry) == 1


def test_a_registry_lists_its_types_by_category_then_id():
    registry = Registry()
    for type_id, category in (("b", "model"), ("a", "training"), ("c", "data"), ("a2", "model")):
        registry.register(bare_type(run_a, type_id, category))
    assert [t.id for t in registry] == ["c", "a2", "b", "a"]


# --- the built-in catalogue ----------------------------------------------------------------------------------


def test_the_catalogue_lists_every_builtin_card_type():
    assert BUILTIN_IDS <= {entry["id"] for entry in default_registry().catalogue()}


def test_the_catalogue_is_json():
    assert json.loads(json.dumps(default_registry().catalogue())) == default_registry().catalogue()


@pytest.mark.parametrize("type_id", GUIDE)
def test_a_guide_card_has_the_guides_input_ports_in_order(type_id):
    assert [p["name"] for p in catalogue_entry(type_id)["inputs"]] == GUIDE[type_id][0]


@pytest.mark.parametrize("type_id", GUIDE)
def test_a_guide_card_has_the_guides_output_ports_in_order(type_id):
    assert [p["name"] for p in catalogue_entry(type_id)["outputs"]] == GUIDE[type_id][1]


@pytest.mark.parametrize("type_id", GUIDE)
def test_a_guide_card_has_the_guides_config_keys_with_the_guides_defaults(type_id):
    properties = catalogue_entry(type_id)["config_schema"]["properties"]
    assert {key: properties.get(key, {}).get("default", "<missing>") for key in GUIDE[type_id][2]} == GUIDE[type_id][2]


@pytest.mark.parametrize("type_id", GUIDE)
def test_a_guide_card_needs_no_config_key_to_be_set(type_id):
    assert catalogue_entry(type_id)["config_schema"].get("required", []) == []


@pytest.mark.parametrize(("type_id", "key"), GUIDE_CHOICES)
def test_a_guide_choice_offers_the_guides_options_first(type_id, key):
    guide = GUIDE_CHOICES[type_id, key]  # issue F adds options after them, never in their place
    assert catalogue_entry(type_id)["config_schema"]["properties"][key]["enum"][:len(guide)] == guide


def test_zero_gradients_takes_no_config():
    assert catalogue_entry("training_zero_grad")["config_schema"]["properties"] == {}


def test_model_define_is_the_guides_model_define_gpu_card():
    assert catalogue_entry("model_define")["title"] == "Model Define (GPU)"


# --- card files ----------------------------------------------------------------------------------------------


@pytest.fixture
def user_card_file(tmp_path):
    path = tmp_path / "my_cards.py"
    path.write_text(USER_CARD)
    return path


def test_a_card_file_registers_its_cards_in_the_default_registry(user_card_file):
    load_card_file(user_card_file)
    assert default_registry().get("user_answer").run(config=NoConfig()) == {"value": 42}


def test_a_card_file_given_as_a_string_path_loads_too(user_card_file):
    load_card_file(str(user_card_file))
    assert "user_answer" in default_registry()


def test_loading_the_same_card_file_twice_is_harmless(user_card_file):
    load_card_file(user_card_file)
    load_card_file(user_card_file)
    assert "user_answer" in default_registry()


def test_the_card_files_of_card_types_are_those_that_define_them(user_card_file):
    load_card_file(user_card_file)
    registry = default_registry()
    assert card_files_of([registry.get("training_loss"), registry.get("user_answer")]) == \
        [str(user_card_file.resolve())]
    assert card_files_of([registry.get("training_loss")]) == []


def test_loaded_among_keeps_the_paths_of_loaded_card_files_resolved(user_card_file, tmp_path, monkeypatch):
    load_card_file(user_card_file)
    monkeypatch.chdir(tmp_path)
    assert loaded_among(["my_cards.py", tmp_path / "other.py"]) == [str(user_card_file.resolve())]
    assert str(user_card_file.resolve()) in loaded_card_files().values()


def test_a_missing_card_file_is_a_registry_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere.py"
    with pytest.raises(RegistryError, match=f"card file '{re.escape(str(missing))}' does not exist"):
        load_card_file(missing)


def test_a_card_file_that_raises_is_a_registry_error_naming_the_file_and_the_exception(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RegistryError, match=f"card file '{re.escape(str(path))}' failed to load: RuntimeError: boom"):
        load_card_file(path)


def test_a_card_file_with_an_invalid_card_reports_the_cards_problem(tmp_path):
    path = tmp_path / "bad_card.py"
    path.write_text(textwrap.dedent('''
        from cardloop import card

        @card("bad_card", title="Bad", category="user")
        def bad(config, extra):
            return {}
    '''))
    with pytest.raises(RegistryError, match="failed to load: ValueError: card type 'bad_card'"):
        load_card_file(path)


def test_a_card_file_that_failed_loads_once_it_is_fixed(tmp_path):
    path = tmp_path / "later.py"
    path.write_text("raise RuntimeError('not yet')\n")
    with pytest.raises(RegistryError):
        load_card_file(path)
    path.write_text(USER_CARD)
    load_card_file(path)
    assert "user_answer" in default_registry()


# --- entry-point card packs ----------------------------------------------------------------------------------


@pytest.fixture
def install_pack(tmp_path, monkeypatch):
    """Install a distribution `mypack` whose `cardloop.cards` entry point is `entry`, with `module` beside it."""
    site = tmp_path / "site"
    modules = []

    def install(module: str, source: str, entry: str, version: str = "0.1") -> None:
        dist_info = site / f"mypack-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mypack\nVersion: {version}\n")
        (dist_info / "entry_points.txt").write_text(f"[cardloop.cards]\nmypack = {entry}\n")
        (site / f"{module}.py").write_text(source)
        modules.append(module)
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()

    yield install
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def test_an_installed_card_pack_module_registers_its_cards(install_pack):
    install_pack("mypack_cards", USER_CARD, "mypack_cards")
    load_entry_points()
    assert default_registry().get("user_answer").run(config=NoConfig()) == {"value": 42}


def test_a_card_pack_entry_point_that_is_a_function_is_called_to_register(install_pack):
    source = "def register():\n" + textwrap.indent(USER_CARD, "    ")
    install_pack("mypack_register", source, "mypack_register:register")
    assert "user_answer" not in default_registry()
    load_entry_points()
    assert "user_answer" in default_registry()


def test_a_card_packs_version_enters_the_code_hash_of_its_cards(install_pack, monkeypatch):
    install_pack("mypack_versioned", USER_CARD, "mypack_versioned", version="2.5")
    load_entry_points()
    assert registry_module.pack_version("mypack_versioned.cards") == "mypack 2.5"
    installed = default_registry().get("user_answer").code_hash
    monkeypatch.setitem(registry_module._pack_versions, "mypack_versioned", "mypack 2.6")
    spec_module._code_hash.cache_clear()
    upgraded = default_registry().get("user_answer").code_hash
    spec_module._code_hash.cache_clear()
    assert installed != upgraded


def test_a_card_pack_that_fails_to_import_is_a_registry_error_naming_the_pack(install_pack):
    install_pack("mypack_broken", "raise ImportError('missing dependency')\n", "mypack_broken")
    with pytest.raises(RegistryError, match=r"card pack 'mypack' \(mypack_broken\) failed to load: missing dependency"):
        load_entry_points()


# --- `cardloop cards` ----------------------------------------------------------------------------------------


def cardloop_cards(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cardloop.cli", "cards", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "1000"})


@pytest.fixture(scope="module")
def cards_json(tmp_path_factory) -> list[dict]:
    result = cardloop_cards("--json", cwd=tmp_path_factory.mktemp("cli"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cards_json_lists_every_builtin_card_type(cards_json):
    assert BUILTIN_IDS <= {entry["id"] for entry in cards_json}


def test_cards_json_gives_every_card_its_ports_and_config_schema(cards_json):
    for entry in cards_json:
        assert {"inputs", "outputs", "config_schema"} <= entry.keys(), entry["id"]
        assert entry["config_schema"]["type"] == "object", entry["id"]


def test_cards_json_gives_the_config_schema_with_required_keys_and_defaults(cards_json):
    schema = next(entry for entry in cards_json if entry["id"] == "model_define")["config_schema"]
    assert schema["required"] == ["input_dim"]
    assert schema["properties"]["layers"]["default"] == [64, 64]


def test_cards_json_describes_the_builtins_as_the_catalogue_does(cards_json):
    in_process = {entry["id"]: entry for entry in default_registry().catalogue()}
    assert all(entry == in_process[entry["id"]] for entry in cards_json if entry["id"] in BUILTIN_IDS)


def test_cards_with_a_card_file_includes_the_user_card(user_card_file, tmp_path):
    result = cardloop_cards("--json", "--cards", str(user_card_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "user_answer" in {entry["id"] for entry in json.loads(result.stdout)}


def test_cards_with_a_missing_card_file_exits_1_naming_it(tmp_path):
    result = cardloop_cards("--cards", "nowhere.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "error: card file 'nowhere.py' does not exist" in result.stderr
