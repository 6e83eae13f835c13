"""The local executor: live values in script order, values dropped after their last reader."""

import pytest

import cardloop
from cardloop.examples import basic_training_loop


def loop(csv):
    return basic_training_loop(path=str(csv), input_dim=4, layers=(8,), prepare=False, batches=2, batch_size=16)


def test_values_read_by_cards_are_released_after_their_last_reader(regression_csv, store):
    result = cardloop.run(loop(regression_csv), store=store)
    with pytest.raises(KeyError, match="output 'predictions' of card 'fwd0' was released .* keep_outputs=True"):
        result.outputs["fwd0"]["predictions"]
    assert result.outputs["loss1"]["loss_value"] > 0  # no card reads it: kept
    assert result.outputs["step1"]["model"] is result.outputs["model"]["model"]  # state: the live module


def test_keep_outputs_keeps_every_value(regression_csv, store):
    result = cardloop.run(loop(regression_csv), store=store, keep_outputs=True)
    assert result.outputs["fwd0"]["predictions"].shape == (16, 1)
    assert result.outputs["batch0"]["batch_data"].X.shape == (16, 4)


def test_a_card_returning_too_little_is_a_clear_failure(regression_csv, store, tmp_path):
    card_file = tmp_path / "bad_cards.py"
    card_file.write_text(
        "from cardloop import Port, card\n"
        "@card('returns_nothing', title='t', category='test', outputs=[Port('value', 'scalar')])\n"
        "def returns_nothing(config):\n"
        "    return {}\n")
    pipeline = cardloop.Pipeline(name="bad")
    pipeline.add("returns_nothing", "nothing")
    with pytest.raises(cardloop.CardFailed, match=r"card 'nothing' \(returns_nothing\) failed: its run function "
                                                  r"returned no value for output\(s\) \['value'\]"):
        cardloop.run(pipeline, store=store, cards=[card_file])


def test_a_released_loss_lives_until_the_next_steps_loss_replaces_it_as_in_a_hand_written_loop(regression_csv):
    """Last step's graph must survive the next forward pass, as a loop variable keeps it: freed at once, it
    takes the parameters' gradient accumulators with it and the next step builds them again."""
    import weakref

    from cardloop.engine.events import RunHooks
    from cardloop.engine.local import LocalExecutor
    from cardloop.engine.plan import plan_pipeline

    losses, alive_after = {}, {}

    class Watch:
        def card_done(self, pc, outputs, started, seconds):
            if pc.card.type == "training_loss":
                losses[pc.id] = weakref.ref(outputs["loss"])
            alive_after[pc.id] = {loss: ref() is not None for loss, ref in losses.items()}

    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, layers=(8,), prepare=False, batches=3,
                                   batch_size=16)
    LocalExecutor().run(plan_pipeline(pipeline), RunHooks([Watch()]))
    # (a card's done hook runs before the values it was the last reader of are released)
    assert alive_after["fwd1"]["loss0"] and alive_after["back1"]["loss0"]  # through the next step's forward
    assert not alive_after["step1"]["loss0"] and alive_after["step1"]["loss1"]  # replaced by the next loss
    assert alive_after["back2"]["loss1"] and not alive_after["step2"]["loss1"]
