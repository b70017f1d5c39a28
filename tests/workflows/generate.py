"""Writes the shipped example workflows (workflows/*.json) and their example input
images (workflows/inputs/*.png).

    .venv/bin/python -m tests.workflows.generate

The files are committed; this script is how they were made, so a change to one
is made here and the files regenerated (the tests check the files themselves,
not this script).  Each workflow is described as columns of nodes, left to
right, and the links between them; node classes, socket order and widget order
come from Loom's own node schemas, so a file can never name an input a node
does not have.  Node sizes follow the editor's layout rules (web/lib/layout.js)
so what is stored is what the editor draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .ui_format import Node, Workflow, _registry, build, dumps

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
INPUTS = WORKFLOWS / "inputs"

# -- the real public models each loader needs (as ComfyUI's templates name them) -----------

SD15 = {"name": "v1-5-pruned-emaonly-fp16.safetensors",
        "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
               "v1-5-pruned-emaonly-fp16.safetensors",
        "directory": "checkpoints"}
SDXL = {"name": "sd_xl_base_1.0.safetensors",
        "url": "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
        "directory": "checkpoints"}
SD15_INPAINT = {"name": "sd-v1-5-inpainting.safetensors",
                "url": "https://huggingface.co/webui/stable-diffusion-inpainting/resolve/main/"
                       "sd-v1-5-inpainting.safetensors",
                "directory": "checkpoints"}
LCM_LORA = {"name": "lcm-lora-sdv1-5.safetensors",
            "url": "https://huggingface.co/latent-consistency/lcm-lora-sdv1-5/resolve/main/"
                   "pytorch_lora_weights.safetensors",
            "directory": "loras"}
CANNY = {"name": "control_v11p_sd15_canny_fp16.safetensors",
         "url": "https://huggingface.co/comfyanonymous/ControlNet-v1-1_fp16_safetensors/resolve/main/"
                "control_v11p_sd15_canny_fp16.safetensors",
         "directory": "controlnet"}
ESRGAN = {"name": "RealESRGAN_x4plus.safetensors",
          "url": "https://huggingface.co/Comfy-Org/Real-ESRGAN_repackaged/resolve/main/RealESRGAN_x4plus.safetensors",
          "directory": "upscale_models"}
CLIP_L14 = {"name": "clip-vit-large-patch14.safetensors",
            "url": "https://huggingface.co/openai/clip-vit-large-patch14/resolve/main/model.safetensors",
            "directory": "clip_vision"}
FLUX_SCHNELL = {"name": "flux1-schnell.safetensors",
                "url": "https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/flux1-schnell.safetensors",
                "directory": "diffusion_models"}
FLUX_DEV = {"name": "flux1-dev.safetensors",
            "url": "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors",
            "directory": "diffusion_models"}
T5XXL = {"name": "t5xxl_fp16.safetensors",
         "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
         "directory": "text_encoders"}
CLIP_L = {"name": "clip_l.safetensors",
          "url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
          "directory": "text_encoders"}
FLUX_AE = {"name": "ae.safetensors",
           "url": "https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors",
           "directory": "vae"}
SD35_LARGE = {"name": "sd3.5_large.safetensors",
              "url": "https://huggingface.co/stabilityai/stable-diffusion-3.5-large/resolve/main/sd3.5_large.safetensors",
              "directory": "checkpoints"}
CLIP_G = {"name": "clip_g.safetensors",
          "url": "https://huggingface.co/Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/text_encoders/clip_g.safetensors",
          "directory": "text_encoders"}

# -- example input images --------------------------------------------------------------------

SCENE = "loom_scene.png"
SCENE_INPAINT = "loom_scene_inpaint.png"
PATTERN = "loom_pattern.png"
#: Where the cottage stands in the scene: the inpainting example makes it transparent.
COTTAGE_BOX = (286, 236, 446, 392)


def draw_scene():
    """A 512x512 landscape: banded sky, sun, two hills, a lake, a cottage and a tree."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (512, 512))
    draw = ImageDraw.Draw(image)
    for band in range(16):  # a banded sky keeps the PNG small
        top = band * 20
        shade = (92 + band * 6, 150 + band * 5, 226 - band * 2)
        draw.rectangle((0, top, 511, top + 19), fill=shade)
    draw.ellipse((64, 48, 144, 128), fill=(255, 214, 90))
    draw.ellipse((-160, 250, 330, 620), fill=(86, 150, 72))
    draw.ellipse((200, 230, 720, 640), fill=(70, 132, 60))
    draw.rectangle((0, 420, 511, 511), fill=(60, 112, 170))
    draw.ellipse((40, 436, 200, 470), fill=(96, 150, 205))
    x0, y0, x1, y1 = COTTAGE_BOX
    draw.rectangle((x0 + 16, y0 + 60, x1 - 16, y1 - 12), fill=(224, 200, 160))
    draw.polygon([(x0, y0 + 64), ((x0 + x1) // 2, y0), (x1, y0 + 64)], fill=(170, 50, 40))
    draw.rectangle((x0 + 66, y0 + 96, x0 + 94, y1 - 12), fill=(110, 70, 40))
    draw.rectangle((x0 + 30, y0 + 84, x0 + 56, y0 + 108), fill=(150, 200, 235))
    draw.rectangle((x1 - 56, y0 + 84, x1 - 30, y0 + 108), fill=(150, 200, 235))
    draw.rectangle((150, 300, 166, 380), fill=(100, 66, 36))
    draw.ellipse((112, 226, 204, 320), fill=(40, 104, 48))
    return image


def draw_scene_for_inpainting():
    """The scene with the cottage cut out (alpha 0): LoadImage's mask is 1 - alpha,
    so the transparent part is what gets repainted."""
    from PIL import ImageDraw

    image = draw_scene().convert("RGBA")
    alpha = image.getchannel("A")
    ImageDraw.Draw(alpha).rectangle(COTTAGE_BOX, fill=0)
    image.putalpha(alpha)
    return image


def draw_pattern():
    """A 256x256 warm/cool checker of 32-pixel squares with a circle on each: a texture to blend."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (256, 256))
    draw = ImageDraw.Draw(image)
    for row in range(8):
        for col in range(8):
            box = (col * 32, row * 32, col * 32 + 31, row * 32 + 31)
            warm = (row + col) % 2 == 0
            draw.rectangle(box, fill=(250, 226, 196) if warm else (206, 222, 250))
            draw.ellipse((box[0] + 8, box[1] + 8, box[2] - 8, box[3] - 8),
                         fill=(236, 170, 120) if warm else (150, 180, 236))
    return image


POSITIVE = dict(color="#232", bgcolor="#353")
NEGATIVE = dict(color="#322", bgcolor="#533")
def checkpoint(model: dict[str, str]) -> Node:
    return Node("ckpt", "CheckpointLoaderSimple", {"ckpt_name": model["name"]}, width=315, models=[model])


def prompts(positive: str, negative: str) -> list[Node]:
    return [Node("positive", "CLIPTextEncode", {"text": positive}, title="Positive prompt", width=400, **POSITIVE),
            Node("negative", "CLIPTextEncode", {"text": negative}, title="Negative prompt", width=400, **NEGATIVE)]


def sampler(key: str = "sampler", **widgets: Any) -> Node:
    values = dict(seed=42, control_after_generate="randomize", steps=20, cfg=8.0, sampler_name="euler",
                  scheduler="normal", denoise=1.0)
    values.update(widgets)
    return Node(key, "KSampler", values, width=315)


def decode_and_save(prefix: str, samples_from: str = "sampler", vae_from: str = "ckpt") -> tuple[list[list[Node]], list]:
    """The last two columns of most workflows: VAE Decode, then Save Image."""
    columns = [[Node("decode", "VAEDecode", width=230)],
               [Node("save", "SaveImage", {"filename_prefix": prefix}, width=400, extra_height=150)]]
    links = [(samples_from, "LATENT", "decode", "samples"), (vae_from, "VAE", "decode", "vae"),
             ("decode", "IMAGE", "save", "images")]
    return columns, links


def sd_links(sampler_key: str = "sampler", latent_from: str = "latent", latent_output: str = "LATENT",
             model_from: str = "ckpt", clip_from: str = "ckpt") -> list:
    return [(clip_from, "CLIP", "positive", "clip"), (clip_from, "CLIP", "negative", "clip"),
            (model_from, "MODEL", sampler_key, "model"), ("positive", "CONDITIONING", sampler_key, "positive"),
            ("negative", "CONDITIONING", sampler_key, "negative"), (latent_from, latent_output, sampler_key, "latent_image")]


INPUT_HOWTO = ("The example image is workflows/inputs/{name} in Loom's source: copy it into your input "
               "folder, or pick your own with the Load Image node's upload button.")


def workflows() -> list[Workflow]:
    made: list[Workflow] = []

    # 1. txt2img, SD 1.5
    save, save_links = decode_and_save("txt2img_sd15")
    made.append(Workflow(
        "txt2img_sd15.json", "Text to image (SD 1.5)",
        "Text to image (SD 1.5)\n"
        "Makes a 512x512 image from a prompt with Stable Diffusion 1.5.\n"
        "Model: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints (the editor offers to download it).\n"
        "Change the green prompt (what you want) and the red one (what to avoid); the seed, steps and cfg on "
        "the KSampler; the size on Empty Latent Image (SD 1.5 works best near 512).",
        [[checkpoint(SD15)],
         [*prompts("a cosy cottage by a lake at sunset, oil painting, warm light, detailed",
                   "blurry, low quality, watermark, text"),
          Node("latent", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})],
         [sampler()], *save],
        [*sd_links(), *save_links]))

    # 2. txt2img, SDXL base
    save, save_links = decode_and_save("txt2img_sdxl")
    made.append(Workflow(
        "txt2img_sdxl.json", "Text to image (SDXL base)",
        "Text to image (SDXL base)\n"
        "Makes a 1024x1024 image from a prompt with Stable Diffusion XL base 1.0.\n"
        "Model: sd_xl_base_1.0.safetensors in models/checkpoints (the editor offers to download it).\n"
        "Change the prompts, the seed and steps on the KSampler. SDXL wants about a megapixel: keep "
        "width x height near 1024x1024 (e.g. 1152x896 or 896x1152).",
        [[checkpoint(SDXL)],
         [*prompts("a lighthouse on a rocky coast in a storm, dramatic clouds, cinematic photo, highly detailed",
                   "blurry, low quality, cartoon, watermark"),
          Node("latent", "EmptyLatentImage", {"width": 1024, "height": 1024, "batch_size": 1})],
         [sampler(steps=25, cfg=7.0)], *save],
        [*sd_links(), *save_links]))

    # 3. img2img
    save, save_links = decode_and_save("img2img")
    made.append(Workflow(
        "img2img.json", "Image to image (SD 1.5)",
        "Image to image (SD 1.5)\n"
        "Redraws an existing picture following the prompt: the image is encoded to a latent and "
        "partly re-noised, so denoise on the KSampler sets how much changes (0.3 keeps the layout, "
        "0.8 keeps little).\n"
        "Model: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints.\n"
        + INPUT_HOWTO.format(name=SCENE),
        [[checkpoint(SD15), Node("image", "LoadImage", {"image": SCENE}, width=315, extra_height=240)],
         [*prompts("a watercolor painting of a cottage on a green hill by a lake, soft colors",
                   "blurry, low quality, photo"),
          Node("encode", "VAEEncode")],
         [sampler(denoise=0.6)], *save],
        [*sd_links(latent_from="encode"), ("image", "IMAGE", "encode", "pixels"), ("ckpt", "VAE", "encode", "vae"),
         *save_links]))

    # 4. inpainting
    save, save_links = decode_and_save("inpainting")
    made.append(Workflow(
        "inpainting.json", "Inpainting (SD 1.5 inpainting model)",
        "Inpainting (SD 1.5 inpainting model)\n"
        "Repaints the transparent part of an image and keeps the rest: Load Image's MASK output is the "
        "image's transparency. Make a mask by erasing to transparency in any image editor.\n"
        "Model: sd-v1-5-inpainting.safetensors in models/checkpoints (an inpainting checkpoint: its UNet "
        "also sees the mask and the masked image).\n"
        "Change the prompt to say what goes in the hole; grow_mask_by softens the seam.\n"
        + INPUT_HOWTO.format(name=SCENE_INPAINT),
        [[checkpoint(SD15_INPAINT),
          Node("image", "LoadImage", {"image": SCENE_INPAINT}, width=315, extra_height=240)],
         [*prompts("a small stone chapel with a bell tower, painted in the same style",
                   "blurry, low quality, seams"),
          Node("encode", "VAEEncodeForInpaint", {"grow_mask_by": 6})],
         [sampler(steps=25, cfg=7.5)], *save],
        [*sd_links(latent_from="encode"), ("image", "IMAGE", "encode", "pixels"), ("ckpt", "VAE", "encode", "vae"),
         ("image", "MASK", "encode", "mask"), *save_links]))

    # 5. hires fix
    save, save_links = decode_and_save("hires_fix", samples_from="second_pass")
    made.append(Workflow(
        "hires_fix.json", "Hires fix: two-pass txt2img (SD 1.5)",
        "Hires fix: two-pass txt2img (SD 1.5)\n"
        "Makes a 512x512 image, enlarges its latent 1.5x (768x768) and samples it again at denoise 0.5, "
        "so the second pass adds detail without changing the composition (SD 1.5 goes wrong when asked "
        "for 768 directly).\n"
        "Model: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints.\n"
        "Change scale_by for the final size and the second KSampler's denoise (0.4-0.6) for how much it redraws.",
        [[checkpoint(SD15)],
         [*prompts("a fantasy castle on a cliff above the clouds, matte painting, intricate detail",
                   "blurry, low quality, watermark"),
          Node("latent", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})],
         [Node("first_pass", "KSampler", sampler().widgets, title="First pass (512x512)", width=315)],
         [Node("upscale", "LatentUpscaleBy", {"upscale_method": "nearest-exact", "scale_by": 1.5},
               title="Upscale latent 1.5x")],
         [Node("second_pass", "KSampler", sampler(steps=14, denoise=0.5).widgets, title="Second pass (denoise 0.5)",
               width=315)],
         *save],
        [*sd_links("first_pass"),
         ("first_pass", "LATENT", "upscale", "samples"),
         ("ckpt", "MODEL", "second_pass", "model"), ("positive", "CONDITIONING", "second_pass", "positive"),
         ("negative", "CONDITIONING", "second_pass", "negative"), ("upscale", "LATENT", "second_pass", "latent_image"),
         *save_links]))

    # 6. LoRA
    save, save_links = decode_and_save("lora")
    made.append(Workflow(
        "lora.json", "LoRA: LCM-LoRA for 6-step images (SD 1.5)",
        "LoRA: LCM-LoRA for 6-step images (SD 1.5)\n"
        "Load LoRA patches the model and the text encoder with a LoRA; this one (LCM-LoRA) lets SD 1.5 "
        "make an image in about 6 steps with the lcm sampler and a low cfg. Model Sampling Discrete (lcm) "
        "samples on the timesteps LCM was distilled on, as ComfyUI's LCM example does.\n"
        "Models: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints, lcm-lora-sdv1-5.safetensors "
        "in models/loras.\n"
        "Any SD 1.5 LoRA works here: pick it in Load LoRA, set the strengths, set Model Sampling Discrete "
        "to eps, and for a style LoRA go back to euler, 20 steps, cfg 7.",
        [[checkpoint(SD15)],
         [Node("lora", "LoraLoader", {"lora_name": LCM_LORA["name"], "strength_model": 1.0, "strength_clip": 1.0},
               width=315, models=[LCM_LORA])],
         [Node("sampling", "ModelSamplingDiscrete", {"sampling": "lcm", "zsnr": False}, width=315),
          Node("latent", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})],
         prompts("a red fox in a snowy forest, morning light, detailed fur, photo", "blurry, low quality"),
         [sampler(steps=6, cfg=1.5, sampler_name="lcm", scheduler="sgm_uniform")], *save],
        [("ckpt", "MODEL", "lora", "model"), ("ckpt", "CLIP", "lora", "clip"), ("lora", "MODEL", "sampling", "model"),
         *sd_links(model_from="sampling", clip_from="lora"), *save_links]))

    # 7. ControlNet (canny)
    save, save_links = decode_and_save("controlnet_canny")
    made.append(Workflow(
        "controlnet_canny.json", "ControlNet: follow the edges of an image (canny, SD 1.5)",
        "ControlNet: follow the edges of an image (canny, SD 1.5)\n"
        "Canny finds the edges of the input picture (shown in the preview); the canny ControlNet makes "
        "the new image keep those outlines while the prompt decides everything else.\n"
        "Models: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints, "
        "control_v11p_sd15_canny_fp16.safetensors in models/controlnet.\n"
        "Change the thresholds (lower finds more edges), the ControlNet strength, or end_percent < 1 to "
        "free the last steps.\n"
        + INPUT_HOWTO.format(name=SCENE),
        [[checkpoint(SD15),
          Node("image", "LoadImage", {"image": SCENE}, width=315, extra_height=240)],
         [*prompts("a snowy winter village at night, glowing windows, aurora in the sky, digital art",
                   "blurry, low quality"),
          Node("controlnet", "ControlNetLoader", {"control_net_name": CANNY["name"]}, width=315, models=[CANNY]),
          Node("canny", "Canny", {"low_threshold": 0.4, "high_threshold": 0.8})],
         [Node("apply", "ControlNetApplyAdvanced", {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0},
               width=315),
          Node("edges", "PreviewImage", title="Edges (preview)", width=315, extra_height=100),
          Node("latent", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})],
         [sampler(steps=20, cfg=7.0)], *save],
        [("ckpt", "CLIP", "positive", "clip"), ("ckpt", "CLIP", "negative", "clip"),
         ("image", "IMAGE", "canny", "image"), ("canny", "IMAGE", "edges", "images"),
         ("positive", "CONDITIONING", "apply", "positive"), ("negative", "CONDITIONING", "apply", "negative"),
         ("controlnet", "CONTROL_NET", "apply", "control_net"), ("canny", "IMAGE", "apply", "image"),
         ("ckpt", "MODEL", "sampler", "model"), ("apply", "positive", "sampler", "positive"),
         ("apply", "negative", "sampler", "negative"), ("latent", "LATENT", "sampler", "latent_image"),
         *save_links]))

    # 8. area composition
    save, save_links = decode_and_save("area_composition")
    made.append(Workflow(
        "area_composition.json", "Area composition: two regions, two prompts (SD 1.5)",
        "Area composition: two regions, two prompts (SD 1.5)\n"
        "A 768x512 image whose left half follows one prompt and right half another: each prompt is "
        "limited to its area (in pixels) with Conditioning (Set Area), then the conditionings are combined "
        "with a prompt for the whole picture.\n"
        "Model: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints.\n"
        "Change each area's prompt, its x/y/width/height (multiples of 8) and strength.",
        [[checkpoint(SD15)],
         [Node("positive", "CLIPTextEncode",
               {"text": "a wide panoramic landscape painting, golden hour, highly detailed"},
               title="Whole picture", width=400, **POSITIVE),
          Node("left_text", "CLIPTextEncode", {"text": "snowy mountains, pine forest, winter"},
               title="Left half", width=400, **POSITIVE),
          Node("right_text", "CLIPTextEncode", {"text": "a sunny tropical beach, palm trees, turquoise sea"},
               title="Right half", width=400, **POSITIVE),
          Node("negative", "CLIPTextEncode", {"text": "blurry, low quality, watermark"},
               title="Negative prompt", width=400, **NEGATIVE)],
         [Node("left_area", "ConditioningSetArea", {"width": 384, "height": 512, "x": 0, "y": 0, "strength": 1.0},
               title="Left area (x 0)", width=260),
          Node("right_area", "ConditioningSetArea", {"width": 384, "height": 512, "x": 384, "y": 0, "strength": 1.0},
               title="Right area (x 384)", width=260)],
         [Node("both_areas", "ConditioningCombine", title="Combine areas", width=260),
          Node("latent", "EmptyLatentImage", {"width": 768, "height": 512, "batch_size": 1})],
         [Node("all", "ConditioningCombine", title="Combine with whole picture", width=260)],
         [sampler(steps=20, cfg=7.0)], *save],
        [("ckpt", "CLIP", "positive", "clip"), ("ckpt", "CLIP", "left_text", "clip"),
         ("ckpt", "CLIP", "right_text", "clip"), ("ckpt", "CLIP", "negative", "clip"),
         ("left_text", "CONDITIONING", "left_area", "conditioning"),
         ("right_text", "CONDITIONING", "right_area", "conditioning"),
         ("left_area", "CONDITIONING", "both_areas", "conditioning_1"),
         ("right_area", "CONDITIONING", "both_areas", "conditioning_2"),
         ("both_areas", "CONDITIONING", "all", "conditioning_1"), ("positive", "CONDITIONING", "all", "conditioning_2"),
         ("ckpt", "MODEL", "sampler", "model"), ("all", "CONDITIONING", "sampler", "positive"),
         ("negative", "CONDITIONING", "sampler", "negative"), ("latent", "LATENT", "sampler", "latent_image"),
         *save_links]))

    # 9. upscale with a model
    made.append(Workflow(
        "upscale_with_model.json", "Upscale an image 4x with a model (Real-ESRGAN)",
        "Upscale an image 4x with a model (Real-ESRGAN)\n"
        "Enlarges a picture 4x (512 -> 2048) with an ESRGAN-family upscale model, which redraws fine "
        "detail instead of blurring it. No Stable Diffusion checkpoint needed.\n"
        "Model: RealESRGAN_x4plus.safetensors in models/upscale_models (any ESRGAN .safetensors/.pth "
        "works, e.g. 4x-UltraSharp).\n"
        + INPUT_HOWTO.format(name=SCENE),
        [[Node("image", "LoadImage", {"image": SCENE}, width=315, extra_height=240),
          Node("upscaler", "UpscaleModelLoader", {"model_name": ESRGAN["name"]}, width=315, models=[ESRGAN])],
         [Node("upscale", "ImageUpscaleWithModel", width=260)],
         [Node("save", "SaveImage", {"filename_prefix": "upscaled"}, width=400, extra_height=150)]],
        [("image", "IMAGE", "upscale", "image"), ("upscaler", "UPSCALE_MODEL", "upscale", "upscale_model"),
         ("upscale", "IMAGE", "save", "images")]))

    # 10. batch of 8, keep the best 2 by CLIP score
    text = "a bowl of ripe oranges on a wooden table, still life photo, soft window light"
    made.append(Workflow(
        "batch8_best2_clip.json", "Batch of 8, keep the best 2 by CLIP score (SD 1.5)",
        "Batch of 8, keep the best 2 by CLIP score (SD 1.5)\n"
        "Makes 8 images in one batch, scores each against the prompt with a CLIP model and saves only "
        "the 2 that match it best; all 8 show in the preview, the scores in the text node.\n"
        "Models: v1-5-pruned-emaonly-fp16.safetensors in models/checkpoints, "
        "clip-vit-large-patch14.safetensors in models/clip_vision.\n"
        "The one prompt node feeds both the sampler and the ranking. Change batch_size and keep_top_k.",
        [[checkpoint(SD15),
          Node("text", "PrimitiveStringMultiline", {"value": text}, title="Prompt", width=400, **POSITIVE)],
         [Node("positive", "CLIPTextEncode", {"text": text}, title="Positive prompt", width=400,
               linked_widgets=("text",), **POSITIVE),
          Node("negative", "CLIPTextEncode", {"text": "blurry, low quality, watermark, text"},
               title="Negative prompt", width=400, **NEGATIVE),
          Node("latent", "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 8})],
         [sampler(steps=20, cfg=7.0)],
         [Node("decode", "VAEDecode")],
         [Node("all", "PreviewImage", title="All 8 candidates", width=400, extra_height=150),
          Node("rank", "CLIPRankImages", {"clip_name": CLIP_L14["name"], "prompt": text, "keep_top_k": 2},
               title="Keep the best 2", width=400, models=[CLIP_L14], linked_widgets=("prompt",))],
         [Node("save", "SaveImage", {"filename_prefix": "best_of_8"}, title="Best 2", width=400, extra_height=150),
          Node("scores", "PreviewAny", title="CLIP scores", width=400, extra_height=40)]],
        [*sd_links(), ("text", "STRING", "positive", "text"), ("text", "STRING", "rank", "prompt"),
         ("sampler", "LATENT", "decode", "samples"), ("ckpt", "VAE", "decode", "vae"),
         ("decode", "IMAGE", "all", "images"), ("decode", "IMAGE", "rank", "images"),
         ("rank", "images", "save", "images"), ("rank", "scores_text", "scores", "source")], note_width=460))

    # 11. image only: no model at all
    made.append(Workflow(
        "image_only.json", "Image only: scale and blend two pictures (no model needed)",
        "Image only: scale and blend two pictures (no model needed)\n"
        "Runs without any checkpoint: loads two images, scales the 256x256 pattern 2x to the scene's "
        "512x512, multiplies it over the scene at half strength and saves the result.\n"
        "Change blend_factor and blend_mode, or the scale method and factor.\n"
        "The example images are workflows/inputs/loom_scene.png and workflows/inputs/loom_pattern.png in "
        "Loom's source: copy them into your input folder, or upload your own with the Load Image nodes.",
        [[Node("scene", "LoadImage", {"image": SCENE}, title="Load scene", width=315, extra_height=240),
          Node("pattern", "LoadImage", {"image": PATTERN}, title="Load pattern", width=315, extra_height=240)],
         [Node("scale", "ImageScaleBy", {"upscale_method": "nearest-exact", "scale_by": 2.0},
               title="Scale pattern 2x", width=260)],
         [Node("blend", "ImageBlend", {"blend_factor": 0.5, "blend_mode": "multiply"}, width=260)],
         [Node("save", "SaveImage", {"filename_prefix": "image_only"}, width=400, extra_height=150)]],
        [("pattern", "IMAGE", "scale", "image"), ("scene", "IMAGE", "blend", "image1"),
         ("scale", "IMAGE", "blend", "image2"), ("blend", "IMAGE", "save", "images")]))


    # FLUX.1 schnell: separate model files, the KSampler on the flow σ (4 steps, cfg 1)
    made.append(Workflow(
        "txt2img_flux_schnell.json", "Text to image (FLUX.1 schnell)",
        "Text to image (FLUX.1 schnell)\n"
        "Makes a 1024x1024 image from a prompt in 4 steps with FLUX.1 schnell.\n"
        "Models: flux1-schnell.safetensors in models/diffusion_models, t5xxl_fp16.safetensors and "
        "clip_l.safetensors in models/text_encoders, ae.safetensors in models/vae (the editor offers to "
        "download them). On a smaller GPU set weight_dtype to fp8_e4m3fn: the weights stay 8-bit in memory.\n"
        "schnell needs no negative prompt and no CFG: keep cfg at 1 and 1-4 steps with the simple scheduler.",
        [[Node("unet", "UNETLoader", {"unet_name": FLUX_SCHNELL["name"]}, width=315, models=[FLUX_SCHNELL]),
          Node("clip", "DualCLIPLoader", {"clip_name1": T5XXL["name"], "clip_name2": CLIP_L["name"],
                                          "type": "flux"}, width=315, models=[T5XXL, CLIP_L]),
          Node("vae", "VAELoader", {"vae_name": FLUX_AE["name"]}, width=315, models=[FLUX_AE])],
         [Node("positive", "CLIPTextEncode",
               {"text": "a red fox sitting in fresh snow at dawn, soft golden light, sharp focus, photo"},
               title="Prompt", width=400, **POSITIVE),
          Node("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1})],
         [Node("negative", "ConditioningZeroOut", title="No negative (cfg 1)", width=230)],
         [sampler(steps=4, cfg=1.0, scheduler="simple")],
         [Node("decode", "VAEDecode", width=230)],
         [Node("save", "SaveImage", {"filename_prefix": "txt2img_flux_schnell"}, width=400, extra_height=150)]],
        [("clip", "CLIP", "positive", "clip"), ("positive", "CONDITIONING", "negative", "conditioning"),
         ("unet", "MODEL", "sampler", "model"), ("positive", "CONDITIONING", "sampler", "positive"),
         ("negative", "CONDITIONING", "sampler", "negative"), ("latent", "LATENT", "sampler", "latent_image"),
         ("sampler", "LATENT", "decode", "samples"), ("vae", "VAE", "decode", "vae"),
         ("decode", "IMAGE", "save", "images")]))

    # FLUX.1 dev: ComfyUI's custom-sampling layout (FluxGuidance, BasicGuider, SamplerCustomAdvanced)
    made.append(Workflow(
        "txt2img_flux_dev.json", "Text to image (FLUX.1 dev)",
        "Text to image (FLUX.1 dev)\n"
        "Makes a 1024x1024 image from a prompt in 20 steps with FLUX.1 dev.\n"
        "Models: flux1-dev.safetensors in models/diffusion_models (a gated download: accept its licence on "
        "Hugging Face first), t5xxl_fp16.safetensors and clip_l.safetensors in models/text_encoders, "
        "ae.safetensors in models/vae.\n"
        "dev is guidance-distilled: FluxGuidance (3.5) sets how closely it follows the prompt, there is no "
        "negative prompt. Keep ModelSamplingFlux's width and height equal to the latent's.",
        [[Node("unet", "UNETLoader", {"unet_name": FLUX_DEV["name"]}, width=315, models=[FLUX_DEV]),
          Node("clip", "DualCLIPLoader", {"clip_name1": T5XXL["name"], "clip_name2": CLIP_L["name"],
                                          "type": "flux"}, width=315, models=[T5XXL, CLIP_L]),
          Node("vae", "VAELoader", {"vae_name": FLUX_AE["name"]}, width=315, models=[FLUX_AE])],
         [Node("shift", "ModelSamplingFlux", {"width": 1024, "height": 1024}, width=315),
          Node("positive", "CLIPTextEncode",
               {"text": "a cosy reading nook by a rainy window, warm lamp light, plants, detailed illustration"},
               title="Prompt", width=400, **POSITIVE),
          Node("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1})],
         [Node("guidance", "FluxGuidance", {"guidance": 3.5}, width=315),
          Node("noise", "RandomNoise", {"noise_seed": 42, "control_after_generate": "randomize"}, width=315),
          Node("select", "KSamplerSelect", {"sampler_name": "euler"}, width=315),
          Node("scheduler", "BasicScheduler", {"scheduler": "simple", "steps": 20, "denoise": 1.0}, width=315)],
         [Node("guider", "BasicGuider", width=230)],
         [Node("sampler", "SamplerCustomAdvanced", width=272)],
         [Node("decode", "VAEDecode", width=230)],
         [Node("save", "SaveImage", {"filename_prefix": "txt2img_flux_dev"}, width=400, extra_height=150)]],
        [("unet", "MODEL", "shift", "model"), ("clip", "CLIP", "positive", "clip"),
         ("positive", "CONDITIONING", "guidance", "conditioning"), ("shift", "MODEL", "scheduler", "model"),
         ("shift", "MODEL", "guider", "model"), ("guidance", "CONDITIONING", "guider", "conditioning"),
         ("noise", "NOISE", "sampler", "noise"), ("guider", "GUIDER", "sampler", "guider"),
         ("select", "SAMPLER", "sampler", "sampler"), ("scheduler", "SIGMAS", "sampler", "sigmas"),
         ("latent", "LATENT", "sampler", "latent_image"), ("sampler", "output", "decode", "samples"),
         ("vae", "VAE", "decode", "vae"), ("decode", "IMAGE", "save", "images")]))

    # SD3.5 large: ComfyUI's SD3 example layout (text encoders beside the checkpoint, the negative
    # prompt only for the first 10% of the steps, a zeroed one after)
    made.append(Workflow(
        "txt2img_sd35.json", "Text to image (SD3.5 large)",
        "Text to image (SD3.5 large)\n"
        "Makes a 1024x1024 image from a prompt in 28 steps with Stable Diffusion 3.5 large.\n"
        "Models: sd3.5_large.safetensors in models/checkpoints (a gated download: accept its licence on Hugging "
        "Face first); clip_l.safetensors, clip_g.safetensors and t5xxl_fp16.safetensors in models/text_encoders "
        "(the checkpoint holds no text encoders). SD3.5 medium and large turbo load the same way (turbo: 4 steps, "
        "cfg 1).\n"
        "The negative prompt steers only the first 10% of the steps; after that a zeroed one is used, as in "
        "ComfyUI's SD3 examples. ModelSamplingSD3's shift 3 is the model's default.",
        [[checkpoint(SD35_LARGE),
          Node("clip", "TripleCLIPLoader", {"clip_name1": CLIP_L["name"], "clip_name2": CLIP_G["name"],
                                            "clip_name3": T5XXL["name"]}, width=315, models=[CLIP_L, CLIP_G, T5XXL])],
         [Node("shift", "ModelSamplingSD3", {"shift": 3.0}, width=315),
          *prompts("a lighthouse on a cliff at sunset, waves crashing below, dramatic clouds, oil painting",
                   "blurry, low quality, watermark"),
          Node("latent", "EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1})],
         [Node("zero", "ConditioningZeroOut", width=230),
          Node("early", "ConditioningSetTimestepRange", {"start": 0.0, "end": 0.1}, title="Negative: first 10%",
               width=315)],
         [Node("late", "ConditioningSetTimestepRange", {"start": 0.1, "end": 1.0}, title="Zeroed: the rest",
               width=315)],
         [Node("combine", "ConditioningCombine", width=230)],
         [sampler(steps=28, cfg=4.5, sampler_name="euler", scheduler="sgm_uniform")],
         [Node("decode", "VAEDecode", width=230)],
         [Node("save", "SaveImage", {"filename_prefix": "txt2img_sd35"}, width=400, extra_height=150)]],
        [("ckpt", "MODEL", "shift", "model"), ("clip", "CLIP", "positive", "clip"), ("clip", "CLIP", "negative", "clip"),
         ("negative", "CONDITIONING", "zero", "conditioning"), ("negative", "CONDITIONING", "early", "conditioning"),
         ("zero", "CONDITIONING", "late", "conditioning"), ("early", "CONDITIONING", "combine", "conditioning_1"),
         ("late", "CONDITIONING", "combine", "conditioning_2"), ("shift", "MODEL", "sampler", "model"),
         ("positive", "CONDITIONING", "sampler", "positive"), ("combine", "CONDITIONING", "sampler", "negative"),
         ("latent", "LATENT", "sampler", "latent_image"), ("sampler", "LATENT", "decode", "samples"),
         ("ckpt", "VAE", "decode", "vae"), ("decode", "IMAGE", "save", "images")]))

    return made


def documents() -> dict[str, dict[str, Any]]:
    """Every workflow file's content, by file name."""
    registry = _registry()
    return {workflow.file: build(workflow, registry) for workflow in workflows()}


def pictures() -> dict[str, Any]:
    """Every example input image (PIL), by file name."""
    return {SCENE: draw_scene(), SCENE_INPAINT: draw_scene_for_inpainting(), PATTERN: draw_pattern()}


def write_all() -> list[Path]:
    written = []
    WORKFLOWS.mkdir(exist_ok=True)
    for name, document in documents().items():
        path = WORKFLOWS / name
        path.write_text(dumps(document) + "\n")
        written.append(path)
    INPUTS.mkdir(exist_ok=True)
    for name, picture in pictures().items():
        path = INPUTS / name
        picture.save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all():
        print(path.relative_to(ROOT), path.stat().st_size)
