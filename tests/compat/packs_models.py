"""A pack written against ComfyUI's model surface (comfy.sample, comfy.sd, the
ModelPatcher methods of MODEL, CLIP.tokenize/encode_from_tokens), as source text."""

MODEL_PACK = '''
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths

CALLS = {"post_cfg": 0, "wrapper": 0}


class StandardCFGHook:
    """Sets a sampler_cfg_function that is plain CFG, and counts post-CFG calls."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "mode": (["standard", "cond_only"],)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_pack"

    def patch(self, model, mode):
        def cfg(args):
            if mode == "cond_only":
                return args["cond"]
            return args["uncond"] + (args["cond"] - args["uncond"]) * args["cond_scale"]

        def post(args):
            CALLS["post_cfg"] += 1
            return args["denoised"]

        m = model.clone()
        m.set_model_sampler_cfg_function(cfg)
        m.set_model_sampler_post_cfg_function(post)
        return (m,)


class CountingWrapper:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_pack"

    def patch(self, model):
        def wrapper(apply_model, params):
            CALLS["wrapper"] += 1
            return apply_model(params["input"], params["timestep"], **params["c"])

        m = model.clone()
        m.set_model_unet_function_wrapper(wrapper)
        return (m,)


class ComfySampleKSampler:
    """A KSampler written on comfy.sample, as custom sampler packs are."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "seed": ("INT", {"default": 0}), "steps": ("INT", {"default": 4}),
            "cfg": ("FLOAT", {"default": 7.0}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS,), "scheduler": (comfy.samplers.KSampler.SCHEDULERS,),
            "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "latent_image": ("LATENT",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "model_pack"

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image):
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                      denoise=1.0, seed=seed)
        out = latent_image.copy()
        out["samples"] = samples
        return (out,)


class LoraByStateDict:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "clip": ("CLIP",),
                             "lora_name": (folder_paths.get_filename_list("loras"),),
                             "strength_model": ("FLOAT", {"default": 1.0}),
                             "strength_clip": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("MODEL", "CLIP")
    FUNCTION = "load"
    CATEGORY = "model_pack"

    def load(self, model, clip, lora_name, strength_model, strength_clip):
        lora = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("loras", lora_name), safe_load=True)
        return comfy.sd.load_lora_for_models(model, clip, lora, strength_model, strength_clip)


class TokensEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"multiline": True})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "model_pack"

    def encode(self, clip, text):
        tokens = clip.clone().tokenize(text)
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
        return ([[cond, {"pooled_output": pooled}]],)


class ScaleOutWeight:
    """add_patches: conv_out's weight times `scale`, as W*0 + scale*W."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scale": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_pack"

    def patch(self, model, scale):
        m = model.clone()
        key = "diffusion_model.conv_out.weight"
        weight = m.get_model_object(key)
        added = m.add_patches({key: (weight.detach().clone(),)}, scale, 0.0)
        assert added == [key], added
        return (m,)


class ModelFacts:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "vae": ("VAE",)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "facts"
    CATEGORY = "model_pack"

    def facts(self, model, vae):
        sampling = model.get_model_object("model_sampling")
        sigmas = comfy.samplers.calculate_sigmas(sampling, "karras", 4)
        return (repr({
            "sigma_max": round(float(sampling.sigma_max), 3), "sigma_min": round(float(sampling.sigma_min), 4),
            "karras_steps": len(sigmas), "t_at_max": int(sampling.timestep(sampling.sigma_max)),
            "clone_options_apart": model.clone().model_options is not model.model_options,
            "transformer_options": isinstance(model.model_options["transformer_options"], dict),
            "load_device": str(model.load_device), "vae_is_sd_VAE": isinstance(vae, comfy.sd.VAE),
            "vae_has_first_stage": vae.first_stage_model is not None,
            "same_model_sampling": bool(model.model.model_sampling.sigma_max == sampling.sigma_max),
        }),)


class VaeRoundTrip:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "image": ("IMAGE",)}}

    RETURN_TYPES = ("LATENT", "IMAGE")
    FUNCTION = "run"
    CATEGORY = "model_pack"

    def run(self, vae, image):
        samples = vae.encode(image[:, :, :, :3])
        return ({"samples": samples}, vae.decode(samples))


class PackCFGGuider:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": ("FLOAT", {"default": 7.0})}}

    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = "model_pack"

    def get_guider(self, model, positive, negative, cfg):
        guider = comfy.samplers.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return (guider,)


class PackSamplerSelect:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (comfy.samplers.SAMPLER_NAMES,)}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "model_pack"

    def get_sampler(self, sampler_name):
        return (comfy.samplers.sampler_object(sampler_name),)


NODE_CLASS_MAPPINGS = {
    "PackCFGGuider": PackCFGGuider, "PackSamplerSelect": PackSamplerSelect,
    "StandardCFGHook": StandardCFGHook, "CountingWrapper": CountingWrapper,
    "ComfySampleKSampler": ComfySampleKSampler, "LoraByStateDict": LoraByStateDict, "TokensEncode": TokensEncode,
    "ScaleOutWeight": ScaleOutWeight, "ModelFacts": ModelFacts, "VaeRoundTrip": VaeRoundTrip,
}
'''
