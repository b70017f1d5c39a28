"""Which worker a prompt goes to (the rule, without a cluster)."""

from server.affinity import Candidate, checkpoint_names, choose
from server.ray_dispatch import parse_workers

import pytest


def test_checkpoint_names_come_from_loader_inputs_without_folders():
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd/a.safetensors"}},
              "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "b.safetensors"}},
              "3": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["1", 0]}}}
    assert checkpoint_names(prompt) == {"a.safetensors", "b.safetensors"}


def test_an_idle_worker_holding_the_checkpoint_wins_over_an_emptier_one():
    candidates = [Candidate(0, 0, frozenset()), Candidate(1, 0, frozenset({"a.safetensors"}))]
    assert choose(candidates, {"a.safetensors"}) == 1


def test_a_busy_worker_holding_the_checkpoint_loses_to_an_idle_one():
    candidates = [Candidate(0, 1, frozenset({"a.safetensors"})), Candidate(1, 0, frozenset())]
    assert choose(candidates, {"a.safetensors"}) == 1


def test_a_new_checkpoint_goes_to_the_least_loaded_then_the_one_holding_least():
    candidates = [Candidate(0, 0, frozenset({"a"})), Candidate(1, 0, frozenset()), Candidate(2, 1, frozenset())]
    assert choose(candidates, {"b"}) == 1


def test_no_candidate_means_no_worker():
    assert choose([], {"a"}) is None


@pytest.mark.parametrize("value, parsed", [("local", ("local", None)), ("ray", ("ray", None)),
                                           ("ray=10.0.0.5:6379", ("ray", "10.0.0.5:6379"))])
def test_workers_option_forms(value, parsed):
    assert parse_workers(value) == parsed


@pytest.mark.parametrize("value", ["gpu", "ray=", "local=x"])
def test_a_bad_workers_option_is_refused_by_name(value):
    with pytest.raises(ValueError, match="--workers"):
        parse_workers(value)
