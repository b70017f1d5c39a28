"""A pack using the small ComfyUI surfaces popular packs rely on (node_helpers,
comfy_extras aliases, latent_preview, core class attributes, the server object),
as source text for a ``custom_nodes/`` folder."""

SURFACE_PACK = '''
import os

import comfy.model_management
import comfy.utils
import folder_paths
import latent_preview
import node_helpers
import nodes
from comfy.cli_args import args
from comfy_extras.nodes_mask import GrowMask, composite
from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel  # noqa: F401 (imported as packs do)
from server import BinaryEventTypes, PromptServer, web

HERE = os.path.dirname(os.path.realpath(__file__))


def _rename_marked_text(json_data):
    for entry in json_data.get("prompt", {}).values():
        if entry.get("inputs", {}).get("text") == "REPLACE_ME":
            entry["inputs"]["text"] = "replaced by on_prompt"
    return json_data


PromptServer.instance.add_on_prompt_handler(_rename_marked_text)


class MakeConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tokens": ("INT", {"default": 3})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "surface_pack"

    def make(self, tokens):
        import torch

        return ([[torch.arange(tokens * 4.0).reshape(1, tokens, 4), {"pooled_output": None}]],)


class AreaByHelper:
    """ConditioningSetArea written with node_helpers, as many packs do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "width": ("INT", {"default": 64}),
                             "height": ("INT", {"default": 64}), "x": ("INT", {"default": 0}),
                             "y": ("INT", {"default": 0}), "strength": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "surface_pack"

    def append(self, conditioning, width, height, x, y, strength):
        return (node_helpers.conditioning_set_values(conditioning, {
            "area": (height // 8, width // 8, y // 8, x // 8), "strength": strength,
            "set_area_to_bounds": False}),)


class SameConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("CONDITIONING",), "b": ("CONDITIONING",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "compare"
    CATEGORY = "surface_pack"

    def compare(self, a, b):
        import torch

        same = len(a) == len(b) and all(torch.equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
        return ("same" if same else f"different: {[x[1] for x in a]} vs {[y[1] for y in b]}",)


class ScaleWithCoreMethods:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "method": (nodes.ImageScale.upscale_methods,),
                             "crop": (nodes.ImageScale.crop_methods,)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "scale"
    CATEGORY = "surface_pack"

    def scale(self, image, method, crop):
        return nodes.ImageScale().upscale(image, method, image.shape[2] * 2, image.shape[1] * 2, crop)


class GrowViaExtras:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "expand": ("INT", {"default": 1})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "grow"
    CATEGORY = "surface_pack"

    def grow(self, mask, expand):
        return GrowMask().expand_mask(mask, expand, True)


class PasteAlpha:
    """Pastes an RGB image onto an RGBA one: image_alpha_fix, then comfy_extras' composite."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("IMAGE",), "source": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "paste"
    CATEGORY = "surface_pack"

    def paste(self, destination, source):
        destination, source = node_helpers.image_alpha_fix(destination, source)
        out = composite(destination.movedim(-1, 1).clone(), source.movedim(-1, 1), 0, 0, None, 1)
        return (out.movedim(1, -1),)


class LoadWithPillow:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "x.png"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"
    CATEGORY = "surface_pack"

    def load(self, name):
        from PIL import Image

        image = node_helpers.pillow(Image.open, folder_paths.get_annotated_filepath(name))
        return (f"{image.size[0]}x{image.size[1]}",)


class PreviewLatentAsImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 8})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "preview"
    CATEGORY = "surface_pack"

    def preview(self, size):
        import torch

        class SD15Format:  # ComfyUI's latent format shape (latent_rgb_factors)
            latent_rgb_factors = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                                  [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
            latent_rgb_factors_bias = None

        previewer = latent_preview.get_previewer(comfy.model_management.get_torch_device(), SD15Format())
        kind, image, max_size = previewer.decode_latent_to_preview_image("JPEG", torch.zeros(1, 4, size, size))
        return (f"{kind} {image.size[0]}x{image.size[1]} {max_size} "
                f"{isinstance(previewer, latent_preview.LatentPreviewer)} {image.getpixel((0, 0))}",)


class ServerFacts:
    """Reads what packs read from the server and the host, and adds a route late."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "x"})}, "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "facts"
    OUTPUT_NODE = True
    CATEGORY = "surface_pack"

    def facts(self, text, unique_id):
        server = PromptServer.instance

        async def late(request):
            return web.json_response({"late": True})

        server.app.router.add_get("/surface_pack/late", late)
        server.send_progress_text("working on " + text, unique_id, server.client_id)
        running, pending = server.prompt_queue.get_current_queue()
        facts = {
            "text": text,
            "supports": "custom_nodes_from_web" in server.supports,
            "remaining": server.prompt_queue.get_tasks_remaining(),
            "running": [item[1] for item in running],
            "history_is_dict": isinstance(server.prompt_queue.get_history(max_items=5), dict),
            "text_event": int(BinaryEventTypes.TEXT),
            "custom_nodes": os.path.dirname(HERE) in folder_paths.folder_names_and_paths["custom_nodes"][0],
            "device": comfy.model_management.get_torch_device_name(comfy.model_management.get_torch_device()),
            "cpu_flag": args.cpu,
        }
        return {"ui": {"facts": [facts]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {
    "MakeConditioning": MakeConditioning, "AreaByHelper": AreaByHelper, "SameConditioning": SameConditioning,
    "ScaleWithCoreMethods": ScaleWithCoreMethods, "GrowViaExtras": GrowViaExtras, "PasteAlpha": PasteAlpha,
    "LoadWithPillow": LoadWithPillow, "PreviewLatentAsImage": PreviewLatentAsImage, "ServerFacts": ServerFacts,
}
'''
