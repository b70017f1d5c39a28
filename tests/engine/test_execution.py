"""Execution: events, caching, partial re-execution, errors, interrupt."""

from __future__ import annotations

import threading

import pytest

from engine.executor import Executor, PromptValidationError
from engine.interrupt import InterruptFlag

from .conftest import chain


def test_a_run_emits_comfyui_event_sequence(executor, rec):
    outcome = executor.execute(chain(2), prompt_id="p", sink=rec.sink)
    assert outcome.status == "success"
    assert rec.types() == ["execution_start", "execution_cached", "executing", "executing", "executing",
                           "executed", "execution_success", "executing"]
    assert rec.events[-1].node is None
    assert all(e.prompt_id == "p" for e in rec.events)


def test_outputs_hold_the_ui_of_each_output_node(executor):
    outcome = executor.execute(chain(3), prompt_id="p")
    assert outcome.outputs == {"3": {"value": [3]}}


def test_rerunning_an_identical_prompt_executes_nothing(executor, rec):
    executor.execute(chain(5), prompt_id="a")
    rec.reset()
    outcome = executor.execute(chain(5), prompt_id="b", sink=rec.sink)
    assert sum(rec.calls.values()) == 0
    assert outcome.executed == []
    assert outcome.outputs == {"5": {"value": [5]}}
    cached_event = next(e for e in rec.events if e.type == "execution_cached")
    assert cached_event.nodes == ["0", "1", "2", "3", "4", "5"]


def test_a_cached_output_node_still_reports_its_ui(executor, rec):
    executor.execute(chain(2), prompt_id="a")
    executor.execute(chain(2), prompt_id="b", sink=rec.sink)
    assert [e.output for e in rec.events if e.type == "executed"] == [{"value": [2]}]


def test_changing_one_widget_reruns_that_node_and_its_descendants_only(executor, rec):
    prompt = chain(5)
    executor.execute(prompt, prompt_id="a")
    rec.reset()
    prompt["3"]["inputs"]["b"] = 10
    outcome = executor.execute(prompt, prompt_id="b")
    assert outcome.executed == ["3", "4", "5"]
    assert outcome.outputs["5"] == {"value": [14]}


def test_identical_subgraphs_share_cache_entries(executor, rec):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 7}},
              "2": {"class_type": "Number", "inputs": {"value": 7}},
              "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
              "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert sum(rec.calls.values()) == 2  # one Number and one Show; the twins were reused
    assert outcome.outputs == {"3": {"value": [7]}, "4": {"value": [7]}}


def test_cache_works_across_prompts_with_different_node_ids(executor, rec):
    executor.execute({"1": {"class_type": "Number", "inputs": {"value": 3}},
                      "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}, prompt_id="a")
    rec.reset()
    executor.execute({"10": {"class_type": "Number", "inputs": {"value": 3}},
                      "20": {"class_type": "Show", "inputs": {"value": ["10", 0]}}}, prompt_id="b")
    assert sum(rec.calls.values()) == 0


def test_the_none_policy_reruns_everything(registry, rec):
    executor = Executor(registry, cache="none")
    executor.execute(chain(3), prompt_id="a")
    rec.reset()
    executor.execute(chain(3), prompt_id="b")
    assert sum(rec.calls.values()) == 4


def test_the_classic_policy_forgets_nodes_the_next_prompt_does_not_use(registry, rec):
    executor = Executor(registry, cache="classic")
    first = {"1": {"class_type": "Number", "inputs": {"value": 1}}, "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    other = {"1": {"class_type": "Number", "inputs": {"value": 2}}, "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    executor.execute(first, prompt_id="a")
    executor.execute(other, prompt_id="b")
    rec.reset()
    executor.execute(first, prompt_id="c")
    assert sum(rec.calls.values()) == 2


def test_the_lru_policy_keeps_results_of_earlier_prompts(registry, rec):
    executor = Executor(registry, cache="lru:10")
    first = {"1": {"class_type": "Number", "inputs": {"value": 1}}, "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    other = {"1": {"class_type": "Number", "inputs": {"value": 2}}, "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    executor.execute(first, prompt_id="a")
    executor.execute(other, prompt_id="b")
    rec.reset()
    executor.execute(first, prompt_id="c")
    assert sum(rec.calls.values()) == 0


def test_the_lru_policy_evicts_beyond_its_size(registry):
    executor = Executor(registry, cache="lru:3")
    executor.execute(chain(5), prompt_id="a")
    assert len(executor.cache) == 3


def test_an_unknown_cache_policy_is_a_clear_error(registry):
    with pytest.raises(ValueError, match="unknown cache policy 'sometimes'"):
        Executor(registry, cache="sometimes")


def test_an_invalid_prompt_is_refused_before_running(executor):
    with pytest.raises(PromptValidationError) as info:
        executor.execute({"1": {"class_type": "Show", "inputs": {}}}, prompt_id="p")
    assert info.value.result.node_errors["1"]["errors"][0]["type"] == "required_input_missing"


def test_an_exception_ends_the_prompt_with_a_precise_error(executor, rec):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 4}},
              "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p", sink=rec.sink)
    assert outcome.status == "error"
    error = outcome.error
    assert error.node_id == "2" and error.node_type == "Fail"
    assert error.exception_message == "this node always fails"
    assert error.exception_type.endswith("RuntimeError")
    assert any("this node always fails" in line for line in error.traceback)
    assert error.current_inputs == {"value": [4]}
    assert error.executed == ["1"]
    assert rec.types()[-2:] == ["execution_error", "executing"]


def test_the_engine_is_ready_for_the_next_prompt_after_an_error(executor):
    executor.execute({"1": {"class_type": "Number", "inputs": {"value": 4}},
                      "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}}}, prompt_id="a")
    assert executor.execute(chain(2), prompt_id="b").status == "success"


def test_interrupt_stops_a_running_node_and_keeps_earlier_results(executor, rec):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 4}},
              "2": {"class_type": "Slow", "inputs": {"value": ["1", 0], "steps": 500}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    flag = InterruptFlag()

    def interrupt_on_progress(event):
        rec.sink(event)
        if event.type == "progress" and event.value == 3:
            flag.set()

    outcome = executor.execute(prompt, prompt_id="p", sink=interrupt_on_progress, interrupt=flag)
    assert outcome.status == "interrupted"
    interrupted = next(e for e in rec.events if e.type == "execution_interrupted")
    assert interrupted.node_id == "2" and interrupted.node_type == "Slow"
    assert [e.value for e in rec.events if e.type == "progress"] == [1, 2, 3]
    rec.reset()
    prompt["2"]["inputs"]["steps"] = 1
    assert executor.execute(prompt, prompt_id="q").status == "success"
    assert rec.calls["1"] == 0  # the Number before the interrupt stayed cached


def test_interrupt_from_another_thread_stops_the_prompt(executor):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 4}},
              "2": {"class_type": "Slow", "inputs": {"value": ["1", 0], "steps": 1000}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    flag = InterruptFlag()
    threading.Timer(0.1, flag.set).start()
    assert executor.execute(prompt, prompt_id="p", interrupt=flag).status == "interrupted"


def test_progress_events_carry_node_and_prompt(executor, rec):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 4}},
              "2": {"class_type": "Slow", "inputs": {"value": ["1", 0], "steps": 3}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    executor.execute(prompt, prompt_id="p", sink=rec.sink)
    progress = [(e.value, e.max, e.node, e.prompt_id) for e in rec.events if e.type == "progress"]
    assert progress == [(1, 3, "2", "p"), (2, 3, "2", "p"), (3, 3, "2", "p")]


def test_a_10000_node_chain_validates_and_runs(executor):
    outcome = executor.execute(chain(10_000), prompt_id="p")
    assert outcome.outputs["10000"] == {"value": [10_000]}


def test_history_messages_record_start_cached_and_end(executor):
    outcome = executor.execute(chain(1), prompt_id="p")
    assert [m[0] for m in outcome.messages] == ["execution_start", "execution_cached", "execution_success"]
