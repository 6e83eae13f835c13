"""The `module: "name:Class"` rule: only an nn.Module subclass defined in a loaded card file or an installed card
pack is built; anything else is refused with a sentence that says what would be valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cardloop.cards.registry import load_card_file
from cardloop.model_modules import ModuleRuleError, build_user_module, code_file, find_source
from tests.model_files import hand_net_weights, write_model_file

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def nets(tmp_path) -> str:
    """The name of a freshly loaded card file that defines Net."""
    path = write_model_file(tmp_path)
    load_card_file(path)
    return path.stem


def test_a_class_of_a_loaded_card_file_is_built_with_its_kwargs(nets):
    net = build_user_module(f"{nets}:Net", {"input_dim": 3, "hidden": 5})
    assert type(net).__name__ == "Net" and net.body[0].weight.shape == (5, 3)


def test_a_card_file_is_named_by_its_file_name_and_recorded_by_its_path(nets, tmp_path):
    source = find_source(f"{nets}:Net")
    assert source.record() == {"card_file": str((tmp_path / f"{nets}.py").resolve())}


def test_the_class_draws_its_weights_from_torchs_generator_as_plain_pytorch_does(nets):
    torch.manual_seed(11)
    net = build_user_module(f"{nets}:Net", {"input_dim": 3})
    for built, expected in zip(net.parameters(), hand_net_weights(11, 3), strict=True):
        assert torch.equal(built, expected)


@pytest.mark.parametrize("spec", ["os:system", "builtins:eval", "torch.nn:Linear", "subprocess:Popen"])
def test_a_module_that_is_no_loaded_card_file_or_installed_pack_is_refused(nets, spec):
    with pytest.raises(ModuleRuleError, match=rf"'{spec.split(':')[0]}' is neither a card file loaded in this process "
                                              rf"nor an installed card pack, .*loaded card files: .*{nets} \("):
        build_user_module(spec, {})


def test_a_function_of_the_card_file_is_refused_as_no_module_class(nets):
    with pytest.raises(ModuleRuleError, match=r"'helper' of card file .* is a function, not an nn.Module subclass; "
                                              r"its nn.Module classes: Net$"):
        build_user_module(f"{nets}:helper", {})


def test_a_class_that_is_not_an_nn_module_is_refused(nets):
    with pytest.raises(ModuleRuleError, match=r"'Plain' of card file .* is a type, not an nn.Module subclass"):
        build_user_module(f"{nets}:Plain", {})


def test_an_nn_module_the_card_file_only_imports_is_refused(nets):
    with pytest.raises(ModuleRuleError, match=r"'Linear' of card file .* is torch.nn.modules.linear.Linear, which it "
                                              r"imports rather than defines"):
        build_user_module(f"{nets}:Linear", {"in_features": 2, "out_features": 1})


def test_a_class_the_card_file_lacks_is_refused_with_the_classes_it_has(nets):
    with pytest.raises(ModuleRuleError, match=r"defines no 'Nett'; its nn.Module classes: Net"):
        build_user_module(f"{nets}:Nett", {})


@pytest.mark.parametrize("spec", ["Net", "a:b:c", "my models:Net", "../x:Net", "x:", "x.:Net"])
def test_a_module_not_written_as_name_colon_class_is_refused(spec):
    with pytest.raises(ModuleRuleError, match=r"write it as '<card file or card pack module>:<class name>'"):
        find_source(spec)


def test_kwargs_the_class_does_not_take_are_refused_naming_the_kwargs(nets):
    with pytest.raises(ModuleRuleError, match=rf"model class '{nets}:Net' could not be built with config field "
                                              r"'kwargs' \{'input_dim': 3, 'width': 2\}: TypeError: .*'width'"):
        build_user_module(f"{nets}:Net", {"input_dim": 3, "width": 2})


def test_two_loaded_card_files_of_the_same_name_are_ambiguous(tmp_path):
    first = write_model_file(tmp_path)
    (tmp_path / "other").mkdir()
    second = tmp_path / "other" / first.name
    second.write_text(first.read_text())
    load_card_file(first)
    load_card_file(second)
    with pytest.raises(ModuleRuleError, match=rf"'{first.stem}' names 2 loaded card files"):
        find_source(f"{first.stem}:Net")


def test_a_stored_class_whose_card_file_is_not_loaded_says_how_to_load_it(tmp_path):
    gone = tmp_path / "nets_never_loaded.py"
    with pytest.raises(ModuleRuleError, match=rf"model class 'nets_never_loaded:Net' \(config field 'module'\) comes "
                                              rf"from card file {gone}, which is not loaded in this process; load it "
                                              rf"with --cards {gone}"):
        build_user_module("nets_never_loaded:Net", {}, {"card_file": str(gone)})


def test_the_code_file_of_a_card_file_class_is_the_card_file(nets, tmp_path):
    assert code_file(f"{nets}:Net") == str((tmp_path / f"{nets}.py").resolve())


def test_a_module_that_names_nothing_has_no_code_file():
    assert code_file("os:system") is None


# --- an installed card pack --------------------------------------------------------------------------------------

PACK_MODELS = '''
from torch import nn


class Net(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.lin = nn.Linear(width, 1)

    def forward(self, x):
        return self.lin(x)
'''

PACK_PIPELINE = '''
import json, sys
import cardloop
from cardloop.pipeline.model import Pipeline

p = Pipeline(name="pack-model")
data = p.add("data_load", "data", path=sys.argv[2])
model = p.add("model_define", "model", input_dim=4, module="tinypack.models:Net", kwargs={"width": 4}, seed=3,
              device="cpu")
opt = p.add("training_init_optimizer", "opt", model=model["model"])
loop = p.add("training_loop", "loop", train_dataset=data["dataset"], model=model["model"],
             optimizer=opt["optimizer"], batch_size=16, num_batches=2)
runs = [cardloop.run(p, store=sys.argv[1], executor=executor, cache=False, threads=1) for executor in sys.argv[3:]]
models = [cardloop.load_output(r.run_id, "loop", "model", store=sys.argv[1]) for r in runs]
print(json.dumps({"run": runs[0].run_id, "recipe": models[0]._cardloop_architecture,
                  "same": all(all(a.equal(b) for a, b in zip(models[0].parameters(), m.parameters()))
                              for m in models)}))
'''


@pytest.fixture(scope="module")
def tinypack(tmp_path_factory) -> Path:
    """A real card pack `tinypack` 0.3.1 (entry point `cardloop.cards`, a module tinypack.models defining Net),
    installed with pip into a folder of its own: a process with that folder on its path has it installed."""
    root = tmp_path_factory.mktemp("tinypack")
    package = root / "src" / "tinypack"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cards.py").write_text("")
    (package / "models.py").write_text(PACK_MODELS)
    (root / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "tinypack"
        version = "0.3.1"

        [project.entry-points."cardloop.cards"]
        tinypack = "tinypack.cards"
    '''))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(root)], check=True, capture_output=True)
    return site


def with_pack(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}


def test_a_class_of_an_installed_card_pack_trains_on_both_executors_and_records_the_pack(tinypack, tmp_path,
                                                                                        regression_csv):
    out = subprocess.run([sys.executable, "-c", PACK_PIPELINE, str(tmp_path / "store"), str(regression_csv),
                          "local", "process"], env=with_pack(tinypack), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["recipe"] == {"name": "module", "config": {"module": "tinypack.models:Net", "kwargs": {"width": 4},
                                                            "source": {"pack": "tinypack 0.3.1"}}}
    assert found["same"]


def test_a_stored_pack_model_is_exported_by_a_new_process_without_cards(tinypack, tmp_path, regression_csv):
    store = tmp_path / "store"
    run = subprocess.run([sys.executable, "-c", PACK_PIPELINE, str(store), str(regression_csv), "local"],
                         env=with_pack(tinypack), capture_output=True, text=True, check=True)
    run_id = json.loads(run.stdout.splitlines()[-1])["run"]
    export = [sys.executable, "-m", "cardloop.cli", "export", run_id, "loop", "model", str(tmp_path / "m.safetensors"),
              "--store", str(store)]
    assert subprocess.run(export, env=with_pack(tinypack), capture_output=True).returncode == 0
    without = subprocess.run(export, env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True)
    assert without.returncode == 1
    assert "model class 'tinypack.models:Net' (config field 'module') comes from card pack tinypack 0.3.1, which " \
           "is not installed here; install it" in " ".join(without.stderr.split())
