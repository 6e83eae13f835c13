"""Sweeps (cardloop.sweeps): settings paths, the grid and random draws, every variant a run in a real store, the
cards the variants share run once, failures recorded, variants in a process pool."""

from __future__ import annotations

import pytest

import cardloop
from cardloop.errors import CardloopError, PipelineInvalid
from cardloop.examples import loop_blocks
from cardloop.store.records import RunRecords
from cardloop.sweeps import Variant, find_setting, variant_pipeline, variants


def tiny(**options):
    """The guide's loop as blocks, small enough for a sweep of a few variants in seconds."""
    return loop_blocks(**{"epochs": 1, "batch_size": 64, "layers": (8,), "patience": None, **options})


def statuses(store, run_id):
    with RunRecords(store / "runs.sqlite") as records:
        return {row.card_id: row.status for row in records.execution_rows(run_id)}


def test_the_grid_is_every_combination_with_the_last_setting_varying_fastest():
    found = variants({"opt.learning_rate": [0.1, 0.2], "model.layers": [[8], [16]]})
    assert [v.settings for v in found] == [
        {"opt.learning_rate": 0.1, "model.layers": [8]}, {"opt.learning_rate": 0.1, "model.layers": [16]},
        {"opt.learning_rate": 0.2, "model.layers": [8]}, {"opt.learning_rate": 0.2, "model.layers": [16]}]
    assert [v.index for v in found] == [0, 1, 2, 3]


def test_a_random_sweep_draws_distinct_variants_of_the_grid_the_same_way_for_the_same_seed():
    settings = {"a.x": [1, 2, 3, 4], "b.y": [5, 6, 7]}
    grid = [v.settings for v in variants(settings)]
    drawn = [v.settings for v in variants(settings, random=5, seed=3)]
    assert len(drawn) == 5 and all(d in grid for d in drawn) and len({str(d) for d in drawn}) == 5
    assert drawn == [v.settings for v in variants(settings, random=5, seed=3)]
    assert drawn != [v.settings for v in variants(settings, random=5, seed=4)]


def test_a_random_sweep_larger_than_its_grid_is_refused_saying_how_many_it_can_draw():
    with pytest.raises(CardloopError, match=r"random=7: a random sweep draws from 1 to 6 variants"):
        variants({"a.x": [1, 2, 3], "b.y": [5, 6]}, random=7)


def test_a_setting_without_values_is_refused_naming_it():
    with pytest.raises(CardloopError, match="sweep setting 'opt.learning_rate' needs a non-empty list"):
        variants({"opt.learning_rate": []})


def test_a_setting_path_reaches_a_body_card_of_nested_loop_blocks():
    card, keys = find_setting(tiny(), "epochs.batches.loss.loss_type")
    assert (card.id, card.type, keys) == ("loss", "training_loss", ["loss_type"])


def test_a_setting_path_reaches_a_blocks_own_loop_settings():
    card, keys = find_setting(tiny(), "epochs.times")
    assert (card.id, keys) == ("epochs", ["times"])


def test_a_setting_naming_no_card_lists_the_pipelines_cards():
    with pytest.raises(CardloopError, match=r"sweep setting 'optim.learning_rate': the pipeline has no card "
                                            r"'optim'; its cards: data, split, normalize, model, opt, epochs"):
        find_setting(tiny(), "optim.learning_rate")


def test_a_setting_naming_no_config_field_lists_the_cards_fields():
    with pytest.raises(CardloopError, match=r"sweep setting 'opt.learnin_rate': card 'opt' "
                                            r"\(training_init_optimizer\) has no config field 'learnin_rate'; "
                                            r"its config fields: .*learning_rate"):
        find_setting(tiny(), "opt.learnin_rate")


def test_a_setting_naming_a_block_and_no_field_lists_its_fields_and_body_cards():
    with pytest.raises(CardloopError, match=r"card 'epochs.batches' \(loop\) has no config field 'los' nor body "
                                            r"card; its config fields: times, max, until, carry or a card of its "
                                            r"body \(zero, fwd, loss, back, step\)"):
        find_setting(tiny(), "epochs.batches.los.loss_type")


def test_a_setting_naming_only_a_card_asks_for_one_of_its_fields():
    with pytest.raises(CardloopError, match=r"sweep setting 'opt' names card 'opt' \(training_init_optimizer\) "
                                            r"but none of its config fields; add one: .*learning_rate"):
        find_setting(tiny(), "opt")


def test_a_variant_pipeline_has_its_settings_and_a_name_that_says_them():
    base = tiny()
    made = variant_pipeline(base, Variant(0, {"epochs.batches.loss.loss_type": "huber", "model.layers": [4]}))
    loss = made.card("epochs").body.cards[1].body.cards[2]
    assert loss.config["loss_type"] == "huber" and made.card("model").config["layers"] == [4]
    assert made.name == 'basic-training-loop [epochs.batches.loss.loss_type="huber", model.layers=[4]]'
    assert base.card("model").config["layers"] == [8]  # the pipeline swept is left as it was


def test_every_variant_is_a_run_named_after_its_settings(store):
    result = cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=store, threads=1)
    assert [o.status for o in result.outcomes] == ["succeeded", "succeeded"]
    with RunRecords(store / "runs.sqlite") as records:
        runs = [records.get_run(o.run_id) for o in result.outcomes]
    assert [r.name for r in runs] == ["basic-training-loop [opt.learning_rate=0.001]",
                                      "basic-training-loop [opt.learning_rate=0.01]"]
    assert [r.pipeline["cards"][4]["config"]["learning_rate"] for r in runs] == [0.001, 0.01]


def test_the_cards_every_variant_shares_run_once_and_each_variant_takes_them_from_the_cache(store):
    result = cardloop.sweep(tiny(), set={"model.layers": [[8], [16]], "opt.learning_rate": [0.001, 0.01]},
                            store=store, threads=1)
    data_cards = ("data", "split", "normalize")
    assert [statuses(store, result.shared_run_id)[c] for c in data_cards] == ["done"] * 3
    for outcome in result.outcomes:
        found = statuses(store, outcome.run_id)
        assert [found[c] for c in data_cards] == ["cached"] * 3
        assert [found[c] for c in ("model", "opt", "epochs", "evaluate")] == ["done"] * 4
    with RunRecords(store / "runs.sqlite") as records:
        runs = records.list_runs()
        assert len(runs) == 5  # the shared cards' run and the four variants
        ran = [row.card_id for run in runs for row in records.execution_rows(run.run_id) if row.status == "done"]
    assert [ran.count(c) for c in data_cards] == [1, 1, 1]


def test_a_setting_of_a_body_card_changes_what_the_variant_trains(store):
    result = cardloop.sweep(tiny(), set={"epochs.batches.loss.loss_type": ["mse", "huber"]}, store=store, threads=1)
    table = result.table()
    assert list(table["epochs.batches.loss.loss_type"]) == ["mse", "huber"]
    mse, huber = table["epochs.batches.loss.loss_value"]
    assert huber < mse  # the Huber loss of the same last batch is below its squared error


def test_a_variant_that_fails_is_recorded_failed_and_the_others_still_run(store):
    result = cardloop.sweep(tiny(), set={"model.input_dim": [10, 3]}, store=store, threads=1)
    ok, failed = result.outcomes
    assert ok.status == "succeeded" and failed.status == "failed"
    assert "card 'epochs" in failed.error
    with RunRecords(store / "runs.sqlite") as records:
        assert records.get_run(failed.run_id).status == "failed"
        assert records.get_run(ok.run_id).status == "succeeded"


def test_an_invalid_variant_is_refused_before_anything_runs_naming_the_variant(store):
    with pytest.raises(PipelineInvalid, match=r"variant opt.learning_rate=-1: card 'opt' \(training_init_optimizer"
                                              r"\): config field 'learning_rate'"):
        cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, -1]}, store=store)
    assert not (store / "runs.sqlite").exists()


def test_variants_in_a_process_pool_train_as_the_same_variants_one_after_the_other(tmp_path):
    settings = {"opt.learning_rate": [0.001, 0.01]}
    alone = cardloop.sweep(tiny(), set=settings, store=tmp_path / "one", threads=1)
    pooled = cardloop.sweep(tiny(), set=settings, store=tmp_path / "two", threads=1, parallel=2)
    assert [o.status for o in pooled.outcomes] == ["succeeded", "succeeded"]
    column = "epochs.batches.loss.loss_value"
    assert list(pooled.table()[column]) == list(alone.table()[column])
    assert list(pooled.table()["evaluate.mse"]) == list(alone.table()["evaluate.mse"])


def test_a_variant_stopped_early_by_early_stopping_says_how_many_epochs_it_ran_and_its_best(store):
    result = cardloop.sweep(tiny(epochs=4, patience=1), set={"opt.learning_rate": [0.001, 0.05]}, store=store,
                            threads=1)
    table = result.table()
    assert list(table["epochs.iterations"]) == [4, 3]  # the second stopped on its own after epoch 2
    assert list(table["best_epoch"]) == [3, 1]
    assert list(table["best_metric"]) == ["epochs.validate.mse"] * 2
    assert list(table["best_value"]) == list(table["epochs.stop.best_value"])


def test_parallel_below_one_is_refused(store):
    with pytest.raises(CardloopError, match="parallel=0"):
        cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001]}, store=store, parallel=0)


def test_a_sweep_is_recorded_with_its_settings_options_and_each_variants_run(store):
    result = cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, random=1, seed=5, store=store,
                            threads=1)
    with RunRecords(store / "runs.sqlite") as records:
        found = records.get_sweep(result.sweep_id)
    assert (found.name, found.status, found.settings) == ("basic-training-loop", "succeeded",
                                                          {"opt.learning_rate": [0.001, 0.01]})
    assert (found.options["random"], found.options["seed"]) == (1, 5)
    assert [(v.settings, v.run_id, v.status) for v in found.variants] == [
        (o.settings, o.run_id, "succeeded") for o in result.outcomes]
    assert found.options["shared_run_id"] is None  # one variant: nothing to share


def test_a_sweep_with_a_failed_variant_is_recorded_failed(store):
    result = cardloop.sweep(tiny(), set={"model.input_dim": [10, 3]}, store=store, threads=1)
    with RunRecords(store / "runs.sqlite") as records:
        found = records.get_sweep(result.sweep_id)
    assert found.status == "failed"
    assert [v.status for v in found.variants] == ["succeeded", "failed"]
    assert "card 'epochs" in found.variants[1].error


def test_a_sweep_runs_its_variants_in_the_pool_it_is_given(store):
    from cardloop.sweeps import InProcess

    class Counting(InProcess):
        submitted = 0

        def submit(self, fn, /, *args, **kwargs):
            Counting.submitted += 1
            return super().submit(fn, *args, **kwargs)

    result = cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=store, threads=1,
                            pool=Counting())
    assert Counting.submitted == 2 and [o.status for o in result.outcomes] == ["succeeded"] * 2


def test_variants_run_one_after_the_other_are_reported_each_as_it_ends(store):
    reported = []

    def on_variant(outcome):
        with RunRecords(store / "runs.sqlite") as records:
            reported.append((outcome.index, len(records.list_runs())))

    cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.003, 0.01]}, store=store, threads=1,
                   on_variant=on_variant)
    assert reported == [(0, 2), (1, 3), (2, 4)]  # the shared cards' run, then one more run before each report


def test_a_sweep_over_a_schedulers_setting_ends_each_variant_at_torchs_learning_rate(store):
    import torch
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    from cardloop.example_schedulers import warmup_cosine

    def last_lr(warmup):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.001)
        schedule = SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.01, total_iters=warmup),
                                            CosineAnnealingLR(optimizer, T_max=4)], milestones=[warmup])
        for _ in range(6):  # 353 rows in batches of 64
            optimizer.step()
            schedule.step()
        return optimizer.param_groups[0]["lr"]

    pipeline = warmup_cosine(warmup_steps=2, T_max=4, epochs=1, batch_size=64, layers=(8,))
    result = cardloop.sweep(pipeline, set={"schedule.warmup_steps": [1, 3]}, store=store, threads=1)
    assert list(result.table()["epochs.batches.lr_step.lr"]) == [last_lr(1), last_lr(3)]


def test_variants_run_by_the_process_executor_end_as_under_the_local_one(tmp_path):
    settings = {"opt.learning_rate": [0.001, 0.01]}
    local = cardloop.sweep(tiny(), set=settings, store=tmp_path / "local", threads=1).table()
    process = cardloop.sweep(tiny(), set=settings, store=tmp_path / "process", threads=1, executor="process").table()
    assert list(process["status"]) == ["succeeded"] * 2
    for column in ("evaluate.mse", "epochs.batches.loss.loss_value", "epochs.validate.mse"):
        assert list(process[column]) == list(local[column])


def test_a_sweep_interrupted_is_recorded_cancelled_with_the_variants_it_finished(store):
    def stop(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cardloop.sweep(tiny(), set={"opt.learning_rate": [0.001, 0.01]}, store=store, threads=1, on_variant=stop)
    with RunRecords(store / "runs.sqlite") as records:
        (found,) = records.list_sweeps()
    assert found.status == "cancelled"
    assert [v.status for v in found.variants] == ["succeeded", "pending"]


def test_the_shared_cards_run_ahead_stop_before_training_even_when_the_variants_share_it(store):
    result = cardloop.sweep(tiny(), set={"evaluate.batch_size": [16, 32]}, store=store, threads=1)
    assert statuses(store, result.shared_run_id) == dict.fromkeys(("data", "split", "normalize", "model", "opt"),
                                                                    "done")
    first, second = (statuses(store, o.run_id) for o in result.outcomes)
    assert (first["epochs"], second["epochs"]) == ("done", "cached")  # the first variant's checkpoint serves it
    assert (first["evaluate"], second["evaluate"]) == ("done", "done")
