"""ComfyUI sampler and scheduler names → diffusers schedulers: the one mapping table.

Per-step noise is drawn as ComfyUI draws it (:mod:`diffusion.k_steps_noise`): the
ancestral samplers and lcm from one generator seeded with the seed + 1 (on the CPU),
the SDE samplers from one ``torchsde.BrownianTree`` with the seed as entropy.  A seed's
step noise is then ComfyUI's; the image also depends on the σ schedule (see the
scheduler table) and on the initial noise's scale (see :mod:`diffusion.custom_sampling`).

=====================  ===================================================  ==========
ComfyUI sampler        implementation                                       fidelity
=====================  ===================================================  ==========
euler                  EulerDiscreteScheduler                               faithful
euler_ancestral        EulerAncestralDiscreteScheduler (normal/simple/      faithful
                       sgm_uniform/ddim_uniform); Loom's own Euler-         (ComfyUI's
                       ancestral step on Euler's sigmas for karras/         noise draws)
                       exponential/beta, which that class lacks
heun                   HeunDiscreteScheduler                                faithful
dpm_2                  KDPM2DiscreteScheduler                               faithful
dpm_2_ancestral        KDPM2AncestralDiscreteScheduler                      faithful
lms                    LMSDiscreteScheduler (order 4)                       faithful
dpmpp_2s_ancestral     Loom's own (no diffusers equivalent)                 own code
dpmpp_sde              Loom's own k-diffusion rules (diffusion/k_steps.py)  faithful
dpmpp_2m_sde           on Euler's σ, with k-diffusion's Brownian-tree       (checked against
dpmpp_3m_sde           noise; 2m_sde is the 'midpoint' variant (ComfyUI's   k-diffusion's
  (and _gpu)           default).  The _gpu names build the Brownian tree    recurrences and
                       on the latent's device, as ComfyUI's do              tree, 1e-6)
dpmpp_2m               DPMSolverMultistepScheduler dpmsolver++, order 2     faithful
ddim                   DDIMScheduler; with karras/exponential/beta          faithful
                       EulerDiscrete (ComfyUI's ddim is Euler inside)
uni_pc                 Loom's own UniPC bh1 (diffusion/k_steps_unipc.py,    faithful
                       checked against diffusers' bh1 on a toy model)
uni_pc_bh2             Loom's own UniPC bh2                                 faithful
ipndm                  Loom's own (k-diffusion's iPNDM, order ≤ 4)          own code
lcm                    LCMScheduler (timestep-spaced schedulers only)       faithful
euler_cfg_pp,          Loom's own CFG++ rules (diffusion/k_steps.py) on     faithful
euler_ancestral_cfg_pp Euler's σ: they step with the negative prompt's      (checked against
dpmpp_2s_ancestral_    prediction, which the denoiser returns beside the    ComfyUI's
  cfg_pp,              guided one; the negative runs even at cfg 1, as      recurrences,
dpmpp_2m_cfg_pp        ComfyUI's                                            1e-12)
=====================  ===================================================  ==========

=============  ==========================================  ===========
scheduler      diffusers option                            fidelity
=============  ==========================================  ===========
normal         timestep_spacing="linspace"                 close (linear, not log,
                                                           sigma interpolation)
karras         use_karras_sigmas=True (rho 7)              faithful
exponential    use_exponential_sigmas=True                 faithful
sgm_uniform    timestep_spacing="trailing"                 close
simple         timestep_spacing="trailing"                 close
ddim_uniform   timestep_spacing="leading", steps_offset=1  close
beta           use_beta_sigmas=True (α=β=0.6)              approximate (ComfyUI
                                                           applies the beta ppf to
                                                           timestep indices)
=============  ==========================================  ===========
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from .errors import SamplingError
from .models import TRAINING_SCHEDULE


@dataclass(frozen=True)
class SamplerSpec:
    scheduler_class: str | None          # diffusers class, or None for Loom's own loop
    options: dict[str, Any] = field(default_factory=dict)
    own: str | None = None               # name of Loom's own sampler (k-diffusion style)


SAMPLERS: dict[str, SamplerSpec] = {
    "euler": SamplerSpec("EulerDiscreteScheduler"),
    # the CFG++ samplers need the unconditional prediction: only Loom's own step rules give it
    "euler_cfg_pp": SamplerSpec(None, own="euler_cfg_pp"),
    "euler_ancestral": SamplerSpec("EulerAncestralDiscreteScheduler"),
    "euler_ancestral_cfg_pp": SamplerSpec(None, own="euler_ancestral_cfg_pp"),
    "heun": SamplerSpec("HeunDiscreteScheduler"),
    "dpm_2": SamplerSpec("KDPM2DiscreteScheduler"),
    "dpm_2_ancestral": SamplerSpec("KDPM2AncestralDiscreteScheduler"),
    "lms": SamplerSpec("LMSDiscreteScheduler"),
    "dpmpp_2s_ancestral": SamplerSpec(None, own="dpmpp_2s_ancestral"),
    "dpmpp_2s_ancestral_cfg_pp": SamplerSpec(None, own="dpmpp_2s_ancestral_cfg_pp"),
    # the SDE samplers run k-diffusion's rules on Euler's σ, with ComfyUI's Brownian-tree noise
    "dpmpp_sde": SamplerSpec(None, own="dpmpp_sde"),
    "dpmpp_2m": SamplerSpec("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_cfg_pp": SamplerSpec(None, own="dpmpp_2m_cfg_pp"),
    "dpmpp_2m_sde": SamplerSpec(None, own="dpmpp_2m_sde"),
    "dpmpp_3m_sde": SamplerSpec(None, own="dpmpp_3m_sde"),
    "ddim": SamplerSpec("DDIMScheduler"),
    # ComfyUI's uni_pc is bh1; diffusers' bh1 diverged on some models, Loom's own follows ComfyUI.
    "uni_pc": SamplerSpec(None, own="uni_pc"),
    "uni_pc_bh2": SamplerSpec(None, own="uni_pc_bh2"),
    "ipndm": SamplerSpec(None, own="ipndm"),
    "lcm": SamplerSpec("LCMScheduler"),
}
# ComfyUI's _gpu variants differ only in where their Brownian path is built (the latent's device).
SAMPLERS.update({f"{name}_gpu": SamplerSpec(None, own=f"{name}_gpu")
                 for name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde")})

SCHEDULERS: dict[str, dict[str, Any]] = {
    "normal": {"timestep_spacing": "linspace"},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim_uniform": {"timestep_spacing": "leading", "steps_offset": 1},
    "beta": {"use_beta_sigmas": True},
}

SAMPLER_NAMES = tuple(SAMPLERS)
SCHEDULER_NAMES = tuple(SCHEDULERS)
_SIGMA_OPTIONS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass(frozen=True)
class Plan:
    """How one (sampler, scheduler) pair runs: a diffusers scheduler, or Loom's own loop."""

    scheduler: Any                 # a configured diffusers scheduler (for own loops: the sigma source)
    own: str | None = None


def _accepts(cls, option: str) -> bool:
    return option in inspect.signature(cls.__init__).parameters


def plan(sampler_name: str, scheduler_name: str, prediction_type: str = "epsilon") -> Plan:
    """The configured scheduler for ComfyUI's (sampler_name, scheduler) pair."""
    import diffusers

    if sampler_name not in SAMPLERS:
        raise SamplingError(f"unknown sampler {sampler_name!r}; choose from {', '.join(SAMPLER_NAMES)}")
    if scheduler_name not in SCHEDULERS:
        raise SamplingError(f"unknown scheduler {scheduler_name!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    spec = SAMPLERS[sampler_name]
    schedule = SCHEDULERS[scheduler_name]
    base = dict(TRAINING_SCHEDULE, prediction_type=prediction_type, timestep_spacing="linspace", steps_offset=0)
    sigma_option = next((o for o in _SIGMA_OPTIONS if schedule.get(o)), None)
    cls_name, own = spec.scheduler_class, spec.own
    if cls_name is not None and sigma_option and not _accepts(getattr(diffusers, cls_name), sigma_option):
        if sampler_name == "ddim":
            cls_name = "EulerDiscreteScheduler"
        elif sampler_name == "euler_ancestral":
            cls_name, own = None, "euler_ancestral"
        else:
            raise SamplingError(f"sampler {sampler_name!r} cannot use the {scheduler_name!r} scheduler; "
                                "use normal, simple, sgm_uniform or ddim_uniform")
    if cls_name is None:  # own loops take their sigmas from an Euler schedule
        cls_name = "EulerDiscreteScheduler"
    cls = getattr(diffusers, cls_name)
    config = {**base, **(spec.options if own is None else {}), **schedule}
    if cls_name == "DDIMScheduler":
        config.update(clip_sample=False, set_alpha_to_one=False)
    config = {k: v for k, v in config.items() if _accepts(cls, k)}
    return Plan(cls.from_config(config), own)
