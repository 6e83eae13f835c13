"""A card that changes the training state it receives without declaring mutates_state=True fails, naming the
card and the flag, under either executor; cards that declare it, or only read the state, run as before."""

import pytest
import torch

import cardloop
from cardloop.engine.plan import plan_pipeline
from cardloop.engine.process import stop_workers
from cardloop.engine.state_guard import fingerprint, needs_watching
from cardloop.errors import CardFailed
from cardloop.examples import add_training_step, basic_training_loop
from cardloop.models import build_model
from cardloop.pipeline.model import Pipeline
from cardloop.store.records import RunRecords
from tests.cards.test_registry import isolated_default_registry  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("isolated_default_registry")

CARDS = '''
import torch

from cardloop import Port, card
from cardloop.kinds import ANY, INFO, MODEL, OPTIMIZER, SCHEDULER


class Halving(torch.optim.SGD):
    """An optimizer class of one's own: not one of torch.optim's, which loading can rebuild."""


@card("own_optimizer", title="Own optimizer", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("optimizer", OPTIMIZER)])
def own_optimizer(config, model):
    return {"optimizer": Halving(model.parameters(), lr=0.1)}


@card("raw_step_lr", title="Step LR", category="test", inputs=[Port("optimizer", OPTIMIZER)],
      outputs=[Port("scheduler", SCHEDULER)])
def raw_step_lr(config, optimizer):
    return {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=10)}


@card("halve_undeclared", title="Halve", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("info", INFO)])
def halve_undeclared(config, model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5)
    return {"info": {}}


@card("halve_declared", title="Halve", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("model", MODEL, state_of="model")], mutates_state=True)
def halve_declared(config, model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5)
    return {"model": model}


@card("bare_linear", title="Bare", category="test", outputs=[Port("model", MODEL)])
def bare_linear(config):
    return {"model": torch.nn.Linear(4, 1)}


@card("layer_names", title="Layer names", category="test", inputs=[Port("model", MODEL)],
      outputs=[Port("names", ANY)])
def layer_names(config, model):
    return {"names": {name for name, _ in model.named_children()}}


@card("count", title="Count", category="test", inputs=[Port("items", ANY)], outputs=[Port("info", INFO)])
def count(config, items):
    return {"info": {"count": len(items)}}


@card("weight_norm", title="Norm", category="test", inputs=[Port("model", MODEL)], outputs=[Port("info", INFO)])
def weight_norm(config, model):
    return {"info": {"norm": float(sum(parameter.detach().norm() for parameter in model.parameters()))}}
'''


@pytest.fixture
def card_file(tmp_path):
    path = tmp_path / "state_cards.py"
    path.write_text(CARDS)
    return path


@pytest.fixture(autouse=True)
def _no_idle_workers():
    yield
    stop_workers()


def with_card(csv, type_id):
    pipeline = basic_training_loop(path=str(csv), input_dim=4, prepare=False, batches=1, batch_size=16, layers=[8])
    pipeline.add(type_id, "custom", model=pipeline.card("step0")["model"])
    return pipeline


def mlp():
    return build_model({"name": "mlp", "config": {"input_dim": 4, "layers": [8], "activation": "relu"}})


@pytest.mark.parametrize("executor", ["local", "process"])
def test_a_card_changing_the_weights_without_mutates_state_fails_naming_the_card_and_the_flag(
        regression_csv, store, card_file, executor):
    with pytest.raises(CardFailed) as failed:
        cardloop.run(with_card(regression_csv, "halve_undeclared"), store=store, cards=[card_file], threads=1,
                     executor=executor)
    message = str(failed.value)
    assert message.startswith("card 'custom' (halve_undeclared) failed: it changed parameter '0.weight' of its "
                              "input 'model', but card type 'halve_undeclared' is declared without "
                              "mutates_state=True")
    assert "@card(..., mutates_state=True)" in message


def test_the_state_an_undeclared_change_left_is_not_stored_as_a_version(regression_csv, store, card_file):
    with pytest.raises(CardFailed) as failed:
        cardloop.run(with_card(regression_csv, "halve_undeclared"), store=store, cards=[card_file], threads=1)
    assert RunRecords(store / "runs.sqlite").state_snapshots(failed.value.result.run_id) == []


@pytest.mark.parametrize("type_id", ["halve_declared", "weight_norm"])
def test_a_card_that_declares_its_change_or_only_reads_the_state_runs(regression_csv, store, card_file, type_id):
    result = cardloop.run(with_card(regression_csv, type_id), store=store, cards=[card_file], threads=1)
    assert result.status == "succeeded" and "custom" in result.executed


def test_a_model_made_without_an_architecture_recipe_fails_the_card_that_made_it(regression_csv, store, card_file):
    pipeline = Pipeline(name="bare")
    data = pipeline.add("data_load", "data", path=str(regression_csv))
    model = pipeline.add("bare_linear", "bare")
    add_training_step(pipeline, 0, data["dataset"], model["model"],
                      pipeline.add("training_init_optimizer", "opt", model=model["model"])["optimizer"])
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, cards=[card_file], threads=1)
    assert str(failed.value).startswith("card 'bare' (bare_linear) failed: its output 'model' cannot be stored: a "
                                        "Linear without an architecture recipe cannot be stored")
    ran = RunRecords(store / "runs.sqlite").card_executions(failed.value.result.run_id)
    assert [(e.card_id, e.status) for e in ran] == [("data", "done"), ("bare", "failed")]


def test_an_optimizer_that_loading_cannot_rebuild_fails_the_card_that_made_it(regression_csv, store, card_file):
    pipeline = Pipeline(name="own optimizer")
    data = pipeline.add("data_load", "data", path=str(regression_csv))
    model = pipeline.add("model_define", "model", input_dim=4, layers=[8])
    opt = pipeline.add("own_optimizer", "opt", model=model["model"])
    add_training_step(pipeline, 0, data["dataset"], model["model"], opt["optimizer"])
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, cards=[card_file], threads=1)
    assert str(failed.value).startswith("card 'opt' (own_optimizer) failed: its output 'optimizer' cannot be stored: "
                                        "optimizer type 'Halving' is not one of torch.optim's")
    ran = RunRecords(store / "runs.sqlite").card_executions(failed.value.result.run_id)
    assert [(e.card_id, e.status) for e in ran] == [("data", "done"), ("model", "done"), ("opt", "failed")]


def with_names_read(csv):
    pipeline = with_card(csv, "layer_names")
    pipeline.add("count", "count", items=pipeline.card("custom")["names"])
    return pipeline


@pytest.mark.parametrize("read, executor, persist, why", [
    (False, "local", "checkpoint", "no card reads it, so it is a result"),
    (False, "process", "checkpoint", "every output is stored"),
    (True, "local", "all", "every output is stored"),
])
def test_a_value_of_kind_any_that_no_codec_can_store_fails_the_card_that_made_it_when_the_run_stores_it(
        regression_csv, store, card_file, read, executor, persist, why):
    pipeline = with_names_read(regression_csv) if read else with_card(regression_csv, "layer_names")
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, cards=[card_file], threads=1, executor=executor, persist=persist)
    message = str(failed.value)
    assert message.startswith(
        f"card 'custom' (layer_names) failed: its output 'names' cannot be stored, and this run must store it "
        f"({why}): no codec can store a set sent through a port of kind 'any' (one can store a table (pandas "
        "DataFrame), ")
    assert message.endswith(", a number or a JSON-able dict, or a type whose codec is registered with "
                            "cardloop.store.codecs.register_codec)")
    ran = RunRecords(store / "runs.sqlite").card_executions(failed.value.result.run_id)
    assert [(e.card_id, e.status) for e in ran][-2:] == [("step0", "done"), ("custom", "failed")]
    assert {e.status for e in ran[:-1]} == {"done"}


def test_a_value_of_kind_any_that_no_codec_can_store_runs_when_the_run_does_not_store_it(
        regression_csv, store, card_file):
    result = cardloop.run(with_names_read(regression_csv), store=store, cards=[card_file], threads=1)
    assert result.status == "succeeded" and result.outputs["count"]["info"] == {"count": 3}


def test_built_in_cards_are_not_watched(regression_csv, card_file):
    cardloop.cards.registry.load_card_file(card_file)
    plan = plan_pipeline(with_card(regression_csv, "weight_norm"))
    assert [pc.id for pc in plan.cards if needs_watching(pc)] == ["custom"]


def test_a_forward_pass_without_gradients_leaves_the_fingerprint_as_it_was():
    model = mlp()
    before = fingerprint(model)
    with torch.no_grad():
        model(torch.ones(2, 4))
    assert fingerprint(model) == before


@pytest.mark.parametrize("change", [
    lambda model: model(torch.ones(2, 4)).sum().backward(),
    lambda model: model.eval(),
    lambda model: setattr(model[0], "weight", torch.nn.Parameter(model[0].weight.detach().clone())),
], ids=["gradients", "eval-mode", "replaced-parameter"])
def test_gradients_mode_and_replaced_parameters_change_a_models_fingerprint(change):
    model = mlp()
    before = fingerprint(model)
    change(model)
    assert fingerprint(model) != before


@pytest.mark.parametrize("change", [
    lambda optimizer: optimizer.step(),
    lambda optimizer: optimizer.param_groups[0].update(lr=0.5),
], ids=["step", "learning-rate"])
def test_a_step_or_a_new_learning_rate_changes_an_optimizers_fingerprint(change):
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    before = fingerprint(optimizer)
    change(optimizer)
    assert fingerprint(optimizer) != before


def test_a_scheduler_made_without_a_recipe_fails_the_card_that_made_it(regression_csv, store, card_file):
    pipeline = with_card(regression_csv, "weight_norm")
    pipeline.cards[-1] = type(pipeline.cards[-1])(id="custom", type="raw_step_lr",
                                                  inputs={"optimizer": "step0.optimizer"})
    with pytest.raises(CardFailed) as failed:
        cardloop.run(pipeline, store=store, cards=[card_file], threads=1)
    assert str(failed.value).startswith(
        "card 'custom' (raw_step_lr) failed: its output 'scheduler' cannot be stored: a StepLR not built by "
        "cardloop.schedulers.build_scheduler has no recipe, so it cannot be stored")

