"""training_best_model: a copy of the model when it improves, which later training leaves alone."""

import pytest
import torch

import cardloop
from cardloop.cards.best_model import best_model
from cardloop.cards.spec import NoConfig
from cardloop.errors import CardError
from cardloop.examples import basic_training_loop
from tests.oracle import assert_same_weights, build_mlp, hand_written_loop


def keep(model, improved, best=None):
    return best_model.run(config=NoConfig(), model=model, improved=improved, best_model=best)["best_model"]


def train_a_step(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.ones(3, 4)).pow(2).mean().backward()
    optimizer.step()


def snapshot(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_an_improved_model_is_copied_as_it_is_and_the_copy_does_not_follow_later_training():
    model = build_mlp(4, [8])
    before = snapshot(model)
    kept = keep(model, True)
    assert kept is not model and all(torch.equal(kept.state_dict()[k], v) for k, v in before.items())
    train_a_step(model)
    assert all(torch.equal(kept.state_dict()[k], v) for k, v in before.items())
    assert not torch.equal(model[0].weight, kept[0].weight)


def test_without_improvement_the_best_model_given_is_kept_unchanged():
    model, earlier = build_mlp(4, [8]), build_mlp(4, [8], seed=1)
    assert keep(model, False, earlier) is earlier
    assert keep(model, 0, earlier) is earlier


def test_without_a_best_model_yet_the_model_is_copied_even_without_improvement():
    model = build_mlp(4, [8])
    kept = keep(model, False)
    assert kept is not model
    assert_same_weights(kept, model)


def test_the_model_is_left_as_it_was():
    model = build_mlp(4, [8])
    train_a_step(model)
    before, grads = snapshot(model), [p.grad.clone() for p in model.parameters()]
    keep(model, True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


@pytest.mark.parametrize("improved", [torch.tensor(True), torch.tensor(1.0)])
def test_improved_may_be_a_tensor(improved):
    model, earlier = build_mlp(4, [8]), build_mlp(4, [8], seed=1)
    assert keep(model, improved, earlier) is not earlier


def test_an_improved_that_is_no_number_is_named():
    with pytest.raises(CardError, match=r"input 'improved' is a str .*; it must be a number"):
        keep(build_mlp(4, [8]), "yes", build_mlp(4, [8]))


def test_its_output_is_a_new_training_state():
    assert best_model.output("best_model").state_of is None and not best_model.mutates_state


def test_in_a_run_the_copy_keeps_the_weights_of_its_step_and_is_stored_with_its_recipe(regression_csv, store):
    shape = dict(batch_size=16, layers=[8])
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=3, **shape)
    p.add("training_early_stopping", "stop", metric=p.card("loss0")["loss_value"])
    p.add("training_best_model", "best", model=p.card("step0")["model"], improved=p.card("stop")["improved"])
    after_step0 = p.index("step0") + 1
    p.cards[after_step0:after_step0] = [p.cards.pop(), p.cards.pop()][::-1]  # right after step0, in the script
    result = cardloop.run(p, store=store)
    kept = result.outputs["best"]["best_model"]
    assert_same_weights(kept, hand_written_loop(regression_csv, batches=1, **shape))
    assert not torch.equal(kept[0].weight, result.outputs["step2"]["model"][0].weight)
    stored = cardloop.load_output(result.run_id, "best", "best_model", store=store)
    assert_same_weights(stored, kept)
