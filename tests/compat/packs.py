"""Custom-node packs written the way popular ComfyUI packs are written, as
source text the tests drop into a ``custom_nodes/`` folder.

Each imports what its kind of pack typically imports: utility packs
``folder_paths``/``comfy.utils``/``comfy.model_management``/``nodes``; image
packs subclass ``nodes.SaveImage`` and use ``get_save_image_path``; flow-control
packs build loops by expansion with ``GraphBuilder``; UI packs register
routes and websocket events on ``PromptServer.instance`` and ship
``WEB_DIRECTORY``; V3 packs export ``comfy_entrypoint``.
"""

UTIL_PACK = '''
import time

import comfy.model_management
import comfy.utils
import folder_paths
import nodes
from comfy.comfy_types import IO, ComfyNodeABC, InputTypeDict

CALLS = {"CountedUpper": 0}


class SlowCounter(ComfyNodeABC):
    """Counts to `steps`, reporting progress and honouring interrupts each step."""

    @classmethod
    def INPUT_TYPES(cls) -> InputTypeDict:
        return {"required": {"steps": ("INT", {"default": 3, "min": 1, "max": nodes.MAX_RESOLUTION}),
                             "delay": ("FLOAT", {"default": 0.0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "count"
    CATEGORY = "util_pack"

    def count(self, steps, delay):
        bar = comfy.utils.ProgressBar(steps)
        for _ in range(steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(delay)
            bar.update(1)
        return (steps,)


class StopWorkflow:
    """Stops the whole prompt from inside a node, as "stop" utility nodes do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {})}}

    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "stop"
    CATEGORY = "util_pack"

    def stop(self, value):
        comfy.model_management.interrupt_current_processing()
        comfy.model_management.throw_exception_if_processing_interrupted()
        return (value,)


class CountedUpper:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "abc"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "util_pack"

    def run(self, text):
        CALLS["CountedUpper"] += 1
        return (text.upper(),)


class ListCheckpoints:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "find"
    CATEGORY = "util_pack"

    def find(self, ckpt_name):
        return (folder_paths.get_full_path_or_raise("checkpoints", ckpt_name),)


NODE_CLASS_MAPPINGS = {"SlowCounter": SlowCounter, "StopWorkflow": StopWorkflow,
                       "CountedUpper": CountedUpper, "ListCheckpoints": ListCheckpoints}
NODE_DISPLAY_NAME_MAPPINGS = {"SlowCounter": "Slow Counter (util pack)"}
'''

IMAGE_PACK = '''
import os

import folder_paths
import nodes
from comfy.utils import common_upscale


class SolidColor:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 8, "min": 1, "max": nodes.MAX_RESOLUTION}),
                             "height": ("INT", {"default": 8, "min": 1, "max": nodes.MAX_RESOLUTION}),
                             "value": ("FLOAT", {"default": 0.5})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "image_pack"

    def make(self, width, height, value):
        import torch

        return (torch.full((1, height, width, 3), value),)


class UpscaleTwice:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image_pack"

    def upscale(self, image):
        samples = image.movedim(-1, 1)
        big = common_upscale(samples, samples.shape[3] * 2, samples.shape[2] * 2, "bilinear", "disabled")
        return (big.movedim(1, -1),)


class InvertViaCore:
    """Calls a core node positionally, as many packs do (nodes.ImageInvert().invert(image))."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "image_pack"

    def run(self, image):
        return nodes.ImageInvert().invert(image)


class SaveImageWithPrefix(nodes.SaveImage):
    """A subclass of the core SaveImage that changes its prefix."""

    @classmethod
    def INPUT_TYPES(cls):
        types = super().INPUT_TYPES()
        types["required"]["filename_prefix"] = ("STRING", {"default": "packed"})
        return types

    CATEGORY = "image_pack"

    def save_images(self, images, filename_prefix="packed", prompt=None, extra_pnginfo=None):
        return super().save_images(images, "image_pack/" + filename_prefix, prompt, extra_pnginfo)


class SaveRaw:
    """Writes files itself with folder_paths.get_save_image_path, as most save nodes do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "filename_prefix": ("STRING", {"default": "raw"})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "image_pack"

    def save(self, image, filename_prefix):
        import numpy as np
        from PIL import Image

        full_output_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), image.shape[2], image.shape[1])
        results = []
        for batch_number, frame in enumerate(image):
            name = f"{filename}_{counter:05}_.png"
            pixels = (frame.numpy() * 255).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(os.path.join(full_output_folder, name))
            results.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1
        return {"ui": {"images": results}}


NODE_CLASS_MAPPINGS = {"SolidColor": SolidColor, "UpscaleTwice": UpscaleTwice, "InvertViaCore": InvertViaCore,
                       "SaveImageWithPrefix": SaveImageWithPrefix, "SaveRaw": SaveRaw}
'''

FLOW_PACK = '''
from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder, is_link


class AddOne:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "add"
    CATEGORY = "flow_pack"

    def add(self, value):
        return (value + 1,)


class RepeatAddOne:
    """A for-loop unrolled by expansion: `times` AddOne nodes in a chain."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "times": ("INT", {"default": 3, "min": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"
    CATEGORY = "flow_pack"

    def expand(self, value, times):
        graph = GraphBuilder()
        current = value
        for _ in range(times):
            node = graph.node("AddOne", value=current)
            current = node.out(0)
        assert is_link(current)
        return {"result": (current,), "expand": graph.finalize()}


class CountdownLoop:
    """A while-loop by recursive expansion: adds one and re-expands until `remaining` is 0."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "remaining": ("INT", {"default": 3, "min": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "loop"
    CATEGORY = "flow_pack"

    def loop(self, value, remaining):
        if remaining == 0:
            return (value,)
        graph = GraphBuilder()
        step = graph.node("AddOne", value=value)
        rest = graph.node("CountdownLoop", value=step.out(0), remaining=remaining - 1)
        return {"result": (rest.out(0),), "expand": graph.finalize()}


class Gate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "open": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "gate"
    CATEGORY = "flow_pack"

    def gate(self, value, open):
        return (value if open else ExecutionBlocker(None),)


NODE_CLASS_MAPPINGS = {"AddOne": AddOne, "RepeatAddOne": RepeatAddOne, "CountdownLoop": CountdownLoop,
                       "Gate": Gate}
'''

ROUTE_PACK = '''
from aiohttp import web
from server import PromptServer

WEB_DIRECTORY = "./js"


@PromptServer.instance.routes.get("/route_pack/echo")
async def echo(request):
    return web.json_response({"echo": request.rel_url.query.get("text", "")})


class Announce:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hi"})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "announce"
    OUTPUT_NODE = True
    CATEGORY = "route_pack"

    def announce(self, text, unique_id):
        server = PromptServer.instance
        server.send_sync("route_pack.announce",
                         {"text": text, "node": unique_id, "last_node_id": server.last_node_id},
                         server.client_id)
        return (text,)


NODE_CLASS_MAPPINGS = {"Announce": Announce}
'''

ROUTE_PACK_JS = '''
import { app } from "../../scripts/app.js";
app.registerExtension({ name: "route_pack.announce" });
'''

V3_PACK = '''
from comfy_api.latest import ComfyExtension, io, ui
from comfy_execution.graph_utils import GraphBuilder


class Multiply(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Multiply",
            display_name="Multiply (V3)",
            category="v3_pack",
            inputs=[io.Int.Input("a", default=2, min=0, max=100), io.Int.Input("b", default=3, optional=True)],
            outputs=[io.Int.Output(display_name="product")],
        )

    @classmethod
    def execute(cls, a, b=1):
        return io.NodeOutput(a * b)


class ShowText(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3ShowText",
            category="v3_pack",
            inputs=[io.AnyType.Input("value")],
            outputs=[io.String.Output()],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, value):
        text = f"{value} @ {cls.hidden.unique_id}"
        return io.NodeOutput(text, ui=ui.PreviewText(text))


class Square(io.ComfyNode):
    """Expands into a V3Multiply of the value with itself."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Square", category="v3_pack", enable_expand=True,
                         inputs=[io.Int.Input("value", default=4)], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, value):
        graph = GraphBuilder()
        product = graph.node("V3Multiply", a=value, b=value)
        return io.NodeOutput(product.out(0), expand=graph.finalize())


class Blocker(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Blocker", category="v3_pack",
                         inputs=[io.Int.Input("value")], outputs=[io.Int.Output()])

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(block_execution="blocked by V3Blocker")


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [Multiply, ShowText, Square, Blocker]


async def comfy_entrypoint():
    return Extension()
'''

V3_VERSIONED_PACK = '''
from comfy_api.v0_0_2 import ComfyExtension, io


class Greeting(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3Greeting", category="v3_pack",
                         inputs=[io.Combo.Input("who", options=["world", "loom"], default="world")],
                         outputs=[io.String.Output()])

    @classmethod
    async def execute(cls, who):
        return io.NodeOutput(f"hello {who}")


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [Greeting]


async def comfy_entrypoint():
    return Extension()
'''

MISSING_MODULE_PACK = '''
import comfy.ldm.modules.attention  # Loom provides no comfy.ldm

NODE_CLASS_MAPPINGS = {}
'''

MISSING_ATTRIBUTE_PACK = '''
from comfy.utils import not_a_loom_helper  # not among the provided attributes

NODE_CLASS_MAPPINGS = {}
'''

from .packs_models import MODEL_PACK  # noqa: E402
from .packs_surfaces import SURFACE_PACK  # noqa: E402

ALL_PACKS = {
    "util_pack": UTIL_PACK,
    "image_pack": IMAGE_PACK,
    "flow_pack": FLOW_PACK,
    "route_pack": ROUTE_PACK,
    "v3_pack": V3_PACK,
    "v3_versioned_pack": V3_VERSIONED_PACK,
    "broken_module_pack": MISSING_MODULE_PACK,
    "broken_attribute_pack": MISSING_ATTRIBUTE_PACK,
    "surface_pack": SURFACE_PACK,
    "model_pack": MODEL_PACK,
}
