"""Planning: state versions follow the script order; cache keys follow lineage."""

import hashlib
import json

from cardloop.engine.plan import plan_pipeline
from cardloop.examples import basic_training_loop
from cardloop.pipeline.validate import parse_config


def keys(pipeline):
    return {pc.id: pc.cache_key for pc in plan_pipeline(pipeline).cards}


def test_optimizer_joins_the_model_state_group():
    plan = plan_pipeline(basic_training_loop(batches=1))
    assert plan.states["opt.optimizer"].group == "model.model"
    assert plan.group_root("model.model").name == "model.model"


def test_every_state_changing_card_makes_the_next_version_in_script_order():
    plan = plan_pipeline(basic_training_loop(batches=2, prepare=False))
    made = {pc.id: pc.states_made.get("model.model") for pc in plan.cards}
    assert [made[c] for c in ("model", "opt", "zero0", "fwd0", "back0", "step0", "zero1")] == [0, 1, 2, 3, 4, 5, 6]
    assert made["batch0"] is None and made["loss0"] is None


def test_a_card_sees_the_state_as_the_cards_above_left_it_whatever_link_it_was_drawn_with():
    plan = {pc.id: pc for pc in plan_pipeline(basic_training_loop(batches=1, prepare=False)).cards}
    # fwd0 is wired to model.model (version 0) but runs after zero0, which made version 2
    assert plan["fwd0"].card.inputs["model"] == "model.model"
    assert plan["fwd0"].states_seen == {"model.model": 2}


def test_state_outputs_name_the_state_they_continue():
    plan = {pc.id: pc for pc in plan_pipeline(basic_training_loop(batches=1, prepare=False)).cards}
    assert plan["step0"].state_outputs == {"model": "model.model", "optimizer": "opt.optimizer"}
    assert plan["zero0"].state_outputs == {"optimizer": "opt.optimizer"}


def test_an_unchanged_pipeline_plans_the_same_keys():
    assert keys(basic_training_loop(batches=2)) == keys(basic_training_loop(batches=2))


def test_changing_one_card_changes_only_the_keys_that_depend_on_it():
    before = keys(basic_training_loop(batches=2))
    changed = basic_training_loop(batches=2)
    changed.card("loss1").config["loss_type"] = "mae"
    after = keys(changed)
    differ = {card for card in before if before[card] != after[card]}
    assert differ == {"loss1", "back1", "step1", "evaluate"}


def test_a_data_file_change_changes_every_key_downstream(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,target\n1,2,3\n4,5,6\n")
    first = keys(basic_training_loop(path=str(data), batches=1, input_dim=2, prepare=False))
    data.write_text("a,b,target\n1,2,3\n4,5,7\n")
    second = keys(basic_training_loop(path=str(data), batches=1, input_dim=2, prepare=False))
    assert first["data"] != second["data"] and first["step0"] != second["step0"]
    assert first["model"] == second["model"]


def test_a_cache_key_is_the_sha256_of_the_lineage_as_canonical_json():
    plan = {pc.id: pc for pc in plan_pipeline(basic_training_loop(batches=1, prepare=False)).cards}
    fwd = plan["fwd0"]
    lineage = {"type": "training_forward", "version": fwd.card_type.version, "code": fwd.card_type.code_hash,
               "config": fwd.config.model_dump(mode="json"),
               "inputs": {"batch_data": f"{plan['batch0'].cache_key}:batch_data"},
               "states": {"model.model": plan["zero0"].cache_key}}  # the state version zero0 left
    text = json.dumps(lineage, sort_keys=True, separators=(",", ":"))
    assert fwd.cache_key == hashlib.sha256(text.encode()).hexdigest()


def test_cards_with_the_same_config_share_its_parsed_form_and_each_gets_exactly_its_own():
    p = basic_training_loop(batches=2, prepare=False)
    p.card("step1").config["gradient_clip"] = 0  # equal to step0's 0.0, not the same: parsed apart
    plan = {pc.id: pc for pc in plan_pipeline(p).cards}
    assert plan["loss0"].config is plan["loss1"].config
    for pc in plan.values():
        assert repr(pc.config) == repr(parse_config(pc.card, pc.card_type))


def test_releases_name_each_last_reader_and_a_hold_key_for_values_that_may_carry_a_graph():
    plan = plan_pipeline(basic_training_loop(batches=2, prepare=False))
    id_at = {pc.position: pc.id for pc in plan.cards}
    released = {id_at[position]: pairs for position, pairs in plan.releases().items()}
    slot = {(pc.id, port): s for pc in plan.cards for port, s in pc.output_slots.items()}
    assert (slot["fwd0", "predictions"], ("training_forward", "predictions")) in released["loss0"]
    assert (slot["loss0", "loss"], ("training_loss", "loss")) in released["back0"]
    assert (slot["batch0", "batch_data"], None) in released["loss0"]  # a batch carries no graph: dropped at once
    state = {slot[pc.id, port] for pc in plan.cards for port in pc.state_outputs}
    assert not state & {s for pairs in released.values() for s, _ in pairs}  # training state is never released


def model_class_pipeline(spec: str):
    from cardloop.pipeline.model import Pipeline

    p = Pipeline(name="model-class")
    model = p.add("model_define", "model", input_dim=4, module=spec, kwargs={"input_dim": 4})
    p.add("training_init_optimizer", "opt", model=model["model"])
    return p


def test_editing_the_card_file_of_a_model_class_changes_the_model_cards_key_and_those_downstream(tmp_path):
    from cardloop.cards.registry import load_card_file
    from tests.model_files import write_model_file

    path = write_model_file(tmp_path)
    load_card_file(path)
    before = keys(model_class_pipeline(f"{path.stem}:Net"))
    assert keys(model_class_pipeline(f"{path.stem}:Net")) == before
    path.write_text(path.read_text() + "\n# the class changed\n")
    after = keys(model_class_pipeline(f"{path.stem}:Net"))
    assert after["model"] != before["model"] and after["opt"] != before["opt"]


def block_reading(path, input_dim: int):
    """A loop block whose body loads the data file itself (each epoch reads `path` again)."""
    from cardloop.pipeline.model import Pipeline

    p = Pipeline(name="body-data")
    model = p.add("model_define", "model", input_dim=input_dim, layers=[4], seed=0)
    opt = p.add("training_init_optimizer", "opt", model=model["model"])
    epochs = p.add_block("epochs", times=2, inputs={"model": model["model"], "optimizer": opt["optimizer"]})
    body = epochs.body
    data = body.add("data_load", "data", path=str(path))
    batch = body.add("training_prepare_batch", "batch", train_dataset=data["dataset"], batch_size=2)
    zero = body.add("training_zero_grad", "zero", optimizer=epochs["optimizer"])
    fwd = body.add("training_forward", "fwd", model=epochs["model"], batch_data=batch["batch_data"])
    loss = body.add("training_loss", "loss", predictions=fwd["predictions"], batch_data=batch["batch_data"])
    back = body.add("training_backward", "back", loss=loss["loss"], model=fwd["model"])
    step = body.add("training_optimizer_step", "step", optimizer=zero["optimizer"], model=back["model"])
    body.outputs.update(model=str(step["model"]), optimizer=str(step["optimizer"]))
    return p


def test_a_data_file_read_inside_a_loop_block_is_in_the_blocks_key(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b,target\n1,2,3\n4,5,6\n")
    first = keys(block_reading(data, 2))
    assert keys(block_reading(data, 2)) == first
    data.write_text("a,b,target\n1,2,3\n4,5,7\n")
    second = keys(block_reading(data, 2))
    assert first["epochs"] != second["epochs"] and first["model"] == second["model"]


def test_editing_the_card_file_of_a_model_class_defined_inside_a_loop_block_changes_the_blocks_key(tmp_path):
    from cardloop.cards.registry import load_card_file
    from cardloop.pipeline.model import Pipeline
    from tests.model_files import write_model_file

    path = write_model_file(tmp_path)
    load_card_file(path)

    def pipeline():
        p = Pipeline(name="body-model")
        block = p.add_block("twice", times=2, inputs={})
        model = block.body.add("model_define", "model", input_dim=4, module=f"{path.stem}:Net",
                               kwargs={"input_dim": 4})
        block.body.outputs.update(model=str(model["model"]))
        return p

    before = keys(pipeline())
    assert keys(pipeline()) == before
    path.write_text(path.read_text() + "\n# the class changed\n")
    assert keys(pipeline())["twice"] != before["twice"]
