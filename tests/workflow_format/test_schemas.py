from engine.schema import MISSING, InputSpec, NodeSchema
from engine.workflow_format import has_control_widget, schemas_from_object_info, ui_to_api, widget_inputs


def test_object_info_combo_list_becomes_combo_input_with_choices(schemas):
    spec = schemas["KSampler"].input("sampler_name")
    assert spec.type == "COMBO" and spec.choices == ("euler", "euler_ancestral", "dpmpp_2m")


def test_object_info_new_style_combo_reads_options():
    info = {"X": {"input": {"required": {"mode": ["COMBO", {"options": ["a", "b"], "default": "b"}]}},
                  "output": [], "name": "X"}}
    spec = schemas_from_object_info(info)["X"].input("mode")
    assert (spec.type, spec.choices, spec.default) == ("COMBO", ("a", "b"), "b")


def test_input_order_decides_widget_order():
    info = {"X": {"input": {"required": {"b": ["INT", {}], "a": ["INT", {}]}},
                  "input_order": {"required": ["a", "b"]}, "output": [], "name": "X"}}
    assert [s.name for s in widget_inputs(schemas_from_object_info(info)["X"])] == ["a", "b"]


def test_sockets_and_force_input_are_not_widgets(schemas):
    assert [s.name for s in widget_inputs(schemas["ForcedText"])] == ["repeat"]
    assert [s.name for s in widget_inputs(schemas["VAEDecode"])] == []


def test_hidden_inputs_are_not_widgets(schemas):
    assert [s.name for s in widget_inputs(schemas["SaveImage"])] == ["filename_prefix"]


def test_seed_named_int_gets_control_widget_without_asking():
    assert has_control_widget(InputSpec("noise_seed", "INT"))
    assert not has_control_widget(InputSpec("steps", "INT"))


def test_outputs_keep_names_and_types(schemas):
    outs = schemas["CheckpointLoaderSimple"].outputs
    assert [(o.type, o.name) for o in outs] == [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]


def test_schemas_may_come_from_a_lookup_function():
    schema = NodeSchema("Only", "Only one", inputs=(InputSpec("x", "INT", default=3),))
    workflow = {"nodes": [{"id": 1, "type": "Only", "mode": 0, "widgets_values": []}], "links": []}
    prompt = ui_to_api(workflow, lambda t: schema if t == "Only" else None)
    assert prompt == {"1": {"inputs": {"x": 3}, "class_type": "Only", "_meta": {"title": "Only one"}}}


def test_missing_default_leaves_input_out():
    schema = NodeSchema("NoDefault", "No default", inputs=(InputSpec("x", "INT", default=MISSING),))
    prompt = ui_to_api({"nodes": [{"id": 1, "type": "NoDefault"}], "links": []}, {"NoDefault": schema})
    assert prompt["1"]["inputs"] == {}
