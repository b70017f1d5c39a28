"""The sampler nodes' live previews: which previewer the host's ``--preview-method``
gives for a model, with its TAESD decoder found in models/vae_approx and loaded
once through the model manager."""

from __future__ import annotations

from typing import Any


def sampling_previewer(ctx: Any, model: Any) -> Any:
    """A ``diffusion.preview.Previewer`` for ``model``'s latents, or None (no previews).

    The previewer takes the model-space latent the sampler's step callback gives.
    """
    env = ctx.env
    method = getattr(env, "preview_method", "none")
    if method == "none":
        return None
    from diffusion.preview import choose_previewer
    from diffusion.taesd import EXTENSIONS, decoder_file, load_decoder

    fmt = model.latent_format
    path = None
    if method in ("taesd", "auto"):
        name = decoder_file(env.folders.list_models("vae_approx", extensions=EXTENSIONS), fmt.name)
        if name is not None:
            path = env.folders.model_path("vae_approx", name)

    def load(file):
        manager = env.models
        return manager.load_file(file, "taesd_decoder", lambda f: load_decoder(f, manager.vae_dtype),
                                 component="vae_approx")

    return choose_previewer(method, fmt, path, load)
