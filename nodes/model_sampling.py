"""ModelSamplingDiscrete (ComfyUI's name, inputs and choices): how a MODEL predicts and on
which σ table it samples — for LCM-LoRAs, v-prediction fine-tunes and zero-terminal-SNR
models whose checkpoints don't say so themselves."""

from __future__ import annotations

from engine.declare import Boolean, Combo, Socket, node

MODEL = Socket("MODEL")

# ComfyUI's choices, in its order; kept here so listing them imports no torch.
SAMPLING_NAMES = ("eps", "v_prediction", "lcm", "x0", "img_to_img", "img_to_img_flow")


@node(category="model/patch", display_name="ModelSamplingDiscrete")
def ModelSamplingDiscrete(model: MODEL,
                          sampling: str = Combo(SAMPLING_NAMES, default="eps"),
                          zsnr: bool = Boolean(False)) -> MODEL:
    """Returns a copy of the model that predicts as ``sampling`` says (lcm: on the 50 σ LCM
    was distilled on, with LCM's boundary condition), on a σ schedule rescaled to zero
    terminal SNR when ``zsnr``; the input model is unchanged.  img_to_img_flow is for
    flow-matching models, which Loom does not run, and is refused with an error."""
    from diffusion.model_sampling import with_sampling

    return with_sampling(model, sampling, zsnr)
