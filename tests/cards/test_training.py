"""The guide's training cards inside pipelines, against PyTorch's own behaviour."""

import pytest
import torch

import cardloop
from cardloop import Pipeline
from cardloop.errors import CardFailed
from cardloop.examples import basic_training_loop
from tests.oracle import assert_same_weights, build_mlp, hand_written_loop

SHAPE = dict(batches=4, batch_size=16, layers=[8])


def test_without_zero_grad_gradients_accumulate_as_in_pytorch(regression_csv, store):
    pipeline = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, zero_grad=False,
                                   learning_rate=0.01, **SHAPE)
    result = cardloop.run(pipeline, store=store)
    assert_same_weights(result.outputs["step3"]["model"],
                        hand_written_loop(regression_csv, zero_grad=False, learning_rate=0.01, **SHAPE))
    with_zero = cardloop.run(basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False,
                                                 learning_rate=0.01, **SHAPE), store=store)
    assert not torch.equal(with_zero.outputs["step3"]["model"][0].weight, result.outputs["step3"]["model"][0].weight)


def test_zero_grad_clears_gradients_to_none(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, **{**SHAPE, "batches": 1})
    p.add("training_zero_grad", "clear", optimizer=p.card("step0")["optimizer"])
    result = cardloop.run(p, store=store)
    assert all(param.grad is None for param in result.outputs["step0"]["model"].parameters())


def two_backward_pipeline(csv, retain_graph: bool) -> Pipeline:
    p = Pipeline(name="twice")
    data = p.add("data_load", "data", path=str(csv))
    model = p.add("model_define", "model", input_dim=4, layers=[8])
    batch = p.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_size=16)
    fwd = p.add("training_forward", "fwd", model=model["model"], batch_data=batch["batch_data"])
    loss = p.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    p.add("training_backward", "back_a", loss=loss["loss"], model=fwd["model"], retain_graph=retain_graph)
    p.add("training_backward", "back_b", loss=loss["loss"], model=fwd["model"])
    return p


def test_retain_graph_lets_a_second_backward_accumulate(regression_csv, store):
    result = cardloop.run(two_backward_pipeline(regression_csv, retain_graph=True), store=store)
    import pandas as pd

    frame = pd.read_csv(regression_csv)
    X = torch.tensor(frame[["a", "b", "c", "d"]].to_numpy("float32")[:16].copy(order="C"))
    y = torch.tensor(frame[["target"]].to_numpy("float32")[:16].copy(order="C"))
    model = build_mlp(4, [8])
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward(retain_graph=True)
    loss.backward()
    for mine, theirs in zip(result.outputs["back_b"]["model"].parameters(), model.parameters()):
        assert torch.equal(mine.grad, theirs.grad)


def test_backward_twice_without_retain_graph_names_the_cards(regression_csv, store):
    with pytest.raises(CardFailed) as caught:
        cardloop.run(two_backward_pipeline(regression_csv, retain_graph=False), store=store)
    message = str(caught.value)
    assert "card 'back_b' (training_backward) failed" in message
    assert "already back-propagated by 'back_a'" in message and "retain_graph: true on 'back_a'" in message
    assert caught.value.result.status == "failed"


def test_a_batch_index_past_the_end_names_the_card_and_the_number_of_batches(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=1, batch_size=16)
    p.card("batch0").config["batch_index"] = 7
    with pytest.raises(CardFailed, match=r"card 'batch0' .*100 rows in batches of 16 make 7 batches"):
        cardloop.run(p, store=store)


def test_the_last_batch_may_be_short(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=7, batch_size=16)
    result = cardloop.run(p, store=store, keep_outputs=True)
    assert result.outputs["batch6"]["batch_info"]["size"] == 4
    assert result.outputs["batch6"]["batch_data"].X.shape == (4, 4)
    assert result.outputs["batch6"]["batch_data"].y.shape == (4, 1)
    assert result.outputs["batch6"]["batch_info"]["rows"] == [96, 100]


def test_step_info_reports_clipping_learning_rate_and_step(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=2, batch_size=16,
                            gradient_clip=1e-3, learning_rate=0.05)
    result = cardloop.run(p, store=store)
    info = result.outputs["step1"]["step_info"]
    assert info["clipped"] is True and info["grad_norm"] > 1e-3
    assert info["step"] == 2 and info["learning_rate"] == 0.05
    assert "grad_norm" not in result.outputs["back1"]["gradients_computed"]


def test_a_model_and_optimizer_that_do_not_belong_together_are_refused(regression_csv, store):
    p = basic_training_loop(path=str(regression_csv), input_dim=4, prepare=False, batches=1, batch_size=16)
    other = p.add("model_define", "other", input_dim=4, layers=[8], seed=1)
    p.add("training_optimizer_step", "wrong", optimizer=p.card("step0")["optimizer"], model=other["model"])
    with pytest.raises(CardFailed, match="card 'wrong'.*not bound to this model"):
        cardloop.run(p, store=store)


# --- training_prepare_batch: batches as views of the frame's tensors, never differing from its rows


def prepare(frame, index, size):
    from cardloop.cards.registry import default_registry
    from cardloop.cards.training import PrepareBatchConfig

    run = default_registry().get("training_prepare_batch").run
    return run(config=PrepareBatchConfig(batch_index=index, batch_size=size), train_dataset=frame)


def numeric_frame(rows=40, features=4):
    import numpy as np
    import pandas as pd

    values = np.arange(rows * (features + 1), dtype="float64").reshape(rows, features + 1)
    frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(features)] + ["target"])
    frame.attrs["target_columns"] = ["target"]
    return frame


def expected_rows(frame, start, stop):
    values = torch.tensor(frame.to_numpy(), dtype=torch.float32)
    return values[start:stop, :-1], values[start:stop, -1:]


@pytest.mark.parametrize("size", [8, 3])  # 8 rows x 4 features start on 64-byte boundaries; 3 rows do not
def test_every_batch_is_rows_of_the_frame_contiguous_and_64_byte_aligned(size):
    frame = numeric_frame()
    for index in range(-(-40 // size)):
        batch = prepare(frame, index, size)["batch_data"]
        X, y = expected_rows(frame, index * size, (index + 1) * size)
        assert torch.equal(batch.X, X) and torch.equal(batch.y, y)
        assert batch.X.is_contiguous() and batch.y.is_contiguous()
        assert batch.X.data_ptr() % 64 == 0 and batch.y.data_ptr() % 64 == 0


def test_a_batch_alone_makes_the_views_of_its_chunk_only_and_a_second_pass_hands_out_the_same_ones():
    from cardloop.batches import VIEW_CHUNK
    from cardloop.cards.training import frame_tensors

    # batches of 16 rows, whose X (4 features) and y start on 64-byte boundaries; the last batch is short
    batches = 3 * VIEW_CHUNK
    frame = numeric_frame(rows=16 * batches - 5)
    first = prepare(frame, VIEW_CHUNK + 1, 16)["batch_data"]
    tensors = frame_tensors(frame, None)
    assert tensors.views_made(16) == VIEW_CHUNK
    again = prepare(frame, VIEW_CHUNK + 1, 16)["batch_data"]
    assert again.X is first.X and again.y is first.y
    for index in range(batches):
        batch = prepare(frame, index, 16)["batch_data"]
        X, y = expected_rows(frame, index * 16, (index + 1) * 16)
        assert torch.equal(batch.X, X) and torch.equal(batch.y, y)
    assert tensors.views_made(16) == batches
    assert prepare(frame, VIEW_CHUNK + 1, 16)["batch_data"].X is first.X
    prepare(frame, 0, 8)  # y's 8 rows x 4 bytes do not end on a boundary: batches of 8 are copies, kept nowhere
    assert tensors.views_made(8) == 0


def test_a_batch_changed_in_place_by_a_card_does_not_change_the_next_batches_or_a_second_pass():
    frame = numeric_frame()
    first = prepare(frame, 0, 8)["batch_data"]
    first.X.mul_(0)  # a card scaling its batch in place
    again = prepare(frame, 0, 8)["batch_data"]
    X, _ = expected_rows(frame, 0, 8)
    assert torch.equal(again.X, X) and not torch.equal(first.X, X)


def test_a_batch_a_card_made_require_grad_is_not_handed_out_again():
    frame = numeric_frame()
    prepare(frame, 1, 8)["batch_data"].X.requires_grad_(True)
    assert not prepare(frame, 1, 8)["batch_data"].X.requires_grad


def prepare_shuffled(frame, index, size, seed, epoch):
    from cardloop.cards.training import PrepareBatchConfig, prepare_batch

    config = PrepareBatchConfig(batch_index=index, batch_size=size, shuffle=True, seed=seed, epoch=epoch)
    return prepare_batch.run(config=config, train_dataset=frame)


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_shuffled_batch_is_the_dataloader_s_batch_of_that_epoch(epoch):
    from torch.utils.data import DataLoader, TensorDataset

    frame = numeric_frame(rows=37)
    X, y = expected_rows(frame, 0, 37)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(5 + epoch))
    for index, (X_batch, y_batch) in enumerate(loader):
        batch = prepare_shuffled(frame, index, 8, seed=5, epoch=epoch)["batch_data"]
        assert torch.equal(batch.X, X_batch) and torch.equal(batch.y, y_batch)


def test_the_batches_of_a_shuffled_epoch_share_one_gathering_of_its_rows():
    frame = numeric_frame(rows=64)  # batches of 16 rows start on 64-byte boundaries: views of the gathered rows
    first, second = (prepare_shuffled(frame, index, 16, seed=0, epoch=1)["batch_data"] for index in (0, 1))
    assert second.X.data_ptr() == first.X.data_ptr() + 16 * 4 * 4


def test_batch_info_says_the_epoch_and_whether_it_was_shuffled():
    info = prepare_shuffled(numeric_frame(), 1, 8, seed=0, epoch=3)["batch_info"]
    assert (info["epoch"], info["shuffled"], info["rows"], info["batch_index"]) == (3, True, [8, 16], 1)
    assert prepare(numeric_frame(), 1, 8)["batch_info"]["shuffled"] is False


def test_backward_reports_the_gradient_norm_and_the_parameters_with_a_gradient_when_asked():
    from cardloop.cards.registry import default_registry
    from cardloop.cards.spec import CardContext
    from cardloop.cards.training import BackwardConfig

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model[0].bias.requires_grad_(False)
    run = default_registry().get("training_backward").run
    ctx = CardContext("back", "training_backward", {"loss": "loss.loss"})
    plain = run(config=BackwardConfig(retain_graph=True), loss=model(torch.randn(5, 4)).pow(2).mean(), model=model,
                ctx=ctx)["gradients_computed"]
    assert plain == {"retain_graph": True}
    model.zero_grad()
    info = run(config=BackwardConfig(track_grad_norm=True), loss=model(torch.randn(5, 4)).pow(2).mean(),
               model=model, ctx=ctx)["gradients_computed"]
    expected = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1e9).item()
    assert info == {"retain_graph": False, "parameters_with_grad": 3, "grad_norm": expected}
