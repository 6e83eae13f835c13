"""Parts of a model by parameter name pattern, and which optimizer card trains which parameters."""

import copy
import gc

import pytest
import torch

from cardloop.errors import CardError
from cardloop.model_parts import check_unclaimed, describe_names, record_trainer, select_parameters

NAMES = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def test_patterns_select_names_in_the_model_s_order():
    assert select_parameters(NAMES, ["4.*", "*.bias"], "parameters") == ["0.bias", "2.bias", "4.weight", "4.bias"]


def test_a_pattern_is_case_sensitive_and_must_match_the_whole_name():
    with pytest.raises(CardError, match="the pattern '0' matches no parameter"):
        select_parameters(NAMES, ["0"], "parameters")
    with pytest.raises(CardError, match=r"the pattern '\*\.BIAS' matches no parameter"):
        select_parameters(NAMES, ["*.BIAS"], "parameters")


def test_a_long_list_of_names_shows_twenty_and_counts_the_rest():
    names = [f"layer{i}.weight" for i in range(25)]
    assert describe_names(names).endswith("'layer19.weight' and 5 more")


def test_the_same_card_making_its_optimizer_again_replaces_the_first():
    model = mlp()
    record_trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "opt")
    check_unclaimed(model, dict(model.named_parameters()), "opt")


def test_a_parameter_another_card_trains_is_named_with_both_cards():
    model = mlp()
    first = torch.optim.SGD(model[0].parameters(), lr=0.1)
    record_trainer(model, first, "opt_body")
    check_unclaimed(model, {"2.weight": model[2].weight}, "opt_head")
    with pytest.raises(CardError, match="'opt_body' already trains '0.bias' of this model, so 'opt_head' cannot"):
        check_unclaimed(model, {"0.bias": model[0].bias, "2.weight": model[2].weight}, "opt_head")


def test_a_copy_of_a_model_and_an_optimizer_no_longer_held_claim_nothing():
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    record_trainer(model, optimizer, "opt_a")
    clone = copy.deepcopy(model)
    check_unclaimed(clone, dict(clone.named_parameters()), "opt_b")
    del optimizer
    gc.collect()
    check_unclaimed(model, dict(model.named_parameters()), "opt_b")
