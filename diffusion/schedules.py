"""ComfyUI's sampler and scheduler names: the one table of what Loom runs for each.

Every KSampler sampler runs k-diffusion's step rules (:mod:`diffusion.k_steps`) on ComfyUI's
exact σ schedule (:mod:`diffusion.sigma_schedules`), with ComfyUI's initial-noise scaling
(√(1+σ₀²) from the top of the schedule) and its UNet timestep (the training timestep nearest
σ).  SamplerCustom runs the same rules, so KSampler and BasicScheduler + SamplerCustom agree
bit for bit.  Per-step noise is drawn as ComfyUI draws it (:mod:`diffusion.k_steps_noise`):
the ancestral samplers and lcm from one generator seeded with the seed + 1 (on the CPU), the
SDE samplers from one ``torchsde.BrownianTree`` with the seed as entropy.

=====================  ===================================================  ==========
ComfyUI sampler        step rule (diffusion/k_steps.py)                     fidelity
=====================  ===================================================  ==========
euler, heun,           k-diffusion's recurrences; checked end to end        faithful
dpmpp_2m               against diffusers' Euler / Heun / DPM-Solver++(2M)
                       fed the same σ and timesteps (test_parity.py)
euler_ancestral        k-diffusion's Euler ancestral, ComfyUI's noise       faithful
dpm_2,                 DPM-Solver-2 (log-σ midpoint); the KSampler drops    faithful
dpm_2_ancestral        the second-to-last σ for them, as ComfyUI's
lms                    linear multistep, order 4 (scipy quadrature)         faithful
dpmpp_2s_ancestral     DPM-Solver++(2S) ancestral                           faithful
dpmpp_sde              k-diffusion's rules with its Brownian-tree noise;    faithful
dpmpp_2m_sde           2m_sde is the 'midpoint' variant (ComfyUI's          (checked against
dpmpp_3m_sde           default).  The _gpu names build the Brownian tree    k-diffusion's
  (and _gpu)           on the latent's device, as ComfyUI's do              recurrences and
                                                                            tree, 1e-6)
ddim                   Euler (ComfyUI's ddim is Euler on the given σ);      faithful
                       checked against diffusers' DDIM on ddim_uniform
uni_pc, uni_pc_bh2     UniPC bh1 / bh2 (diffusion/k_steps_unipc.py); the    faithful
                       KSampler drops the second-to-last σ, as ComfyUI's
ipndm                  k-diffusion's iPNDM, order ≤ 4                       faithful
lcm                    ComfyUI's lcm step (predict, re-noise to σ_next)     faithful for
                       with ComfyUI's noise; like ComfyUI it does not       ComfyUI without
                       change the model's output scaling                    ModelSampling-
                                                                            Discrete(lcm)
euler_cfg_pp,          CFG++ rules: they step with the negative prompt's    faithful
euler_ancestral_cfg_pp prediction, which the denoiser returns beside the    (checked against
dpmpp_2s_ancestral_    guided one; the negative runs even at cfg 1, as      ComfyUI's
  cfg_pp,              ComfyUI's                                            recurrences,
dpmpp_2m_cfg_pp                                                             1e-12)
=====================  ===================================================  ==========

Every scheduler (normal, karras, exponential, sgm_uniform, simple, ddim_uniform, beta) gives
ComfyUI's σ list exactly (checked against its formulas written out independently in
tests/diffusion/test_sigma_schedules.py, 1e-6 relative), for any sampler, in the KSampler
and in BasicScheduler; denoise < 1 takes the tail of an ``int(steps / denoise)``-step one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import SamplingError
from .k_steps import RULE_NAMES
from .sigma_schedules import SCHEDULER_NAMES, comfy_sigmas, initial_noise_scale, training_sigmas

#: ComfyUI's KSampler names, in its order: one per step rule
SAMPLER_NAMES = RULE_NAMES

# -- diffusers references: diffusers' own solvers fed ComfyUI's σ --------------------------
# Not used for sampling; tests and benchmarks compare Loom against diffusers' pipelines with
# these, so the comparison checks the model and the solver math on the same σ.

#: sampler → the diffusers scheduler running the same solver in a pipeline
_REFERENCES = {"euler": "EulerDiscreteScheduler", "ddim": "EulerDiscreteScheduler",
               "heun": "HeunDiscreteScheduler", "dpmpp_2m": "DPMSolverMultistepScheduler"}


@dataclass(frozen=True)
class Plan:
    """A diffusers scheduler that steps through ComfyUI's σ for (sampler, scheduler)."""

    scheduler: Any


def plan(sampler_name: str, scheduler_name: str, prediction_type: str = "epsilon") -> Plan:
    """A diffusers scheduler for ``sampler_name`` that, when a pipeline calls
    ``set_timesteps(n)``, steps through ComfyUI's σ for ``scheduler_name`` with ComfyUI's UNet
    timesteps and initial noise scale: diffusers' solver on exactly the KSampler's schedule."""
    if sampler_name not in SAMPLER_NAMES:
        raise SamplingError(f"unknown sampler {sampler_name!r}; choose from {', '.join(SAMPLER_NAMES)}")
    if scheduler_name not in SCHEDULER_NAMES:
        raise SamplingError(f"unknown scheduler {scheduler_name!r}; choose from {', '.join(SCHEDULER_NAMES)}")
    if sampler_name not in _REFERENCES:
        raise SamplingError(f"no diffusers scheduler runs {sampler_name!r} as ComfyUI does; "
                            f"references exist for {', '.join(_REFERENCES)}")
    cls = _reference_class(_REFERENCES[sampler_name])
    config = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  prediction_type=prediction_type)
    if cls.__name__ == "ComfyDPMSolverMultistepScheduler":
        config.update(algorithm_type="dpmsolver++", solver_order=2)
    scheduler = cls.from_config(config)
    scheduler.comfy_scheduler = scheduler_name
    return Plan(scheduler)


_CLASSES: dict[str, type] = {}


def _reference_class(base_name: str) -> type:
    """diffusers' ``base_name`` with ``set_timesteps(n)`` replaced by ComfyUI's σ for n steps."""
    if base_name in _CLASSES:
        return _CLASSES[base_name]
    import diffusers
    import torch

    base = getattr(diffusers, base_name)
    vp = base_name == "DPMSolverMultistepScheduler"   # works on x/√(σ²+1), not x

    class Reference(base):
        comfy_scheduler = "normal"

        def set_timesteps(self, num_inference_steps=None, device=None, *args, **kwargs):
            if args or kwargs:  # diffusers' own calls (Heun's __init__ sets up 1000 steps)
                return super().set_timesteps(num_inference_steps, device, *args, **kwargs)
            sigmas = comfy_sigmas(self.comfy_scheduler, int(num_inference_steps))
            super().set_timesteps(len(sigmas) - 1, device=device)   # resets the solver's state
            table = training_sigmas()
            log_table = table.double().log().float()
            steps = [int((torch.tensor(s).log() - log_table).abs().argmin()) for s in sigmas[:-1]]
            s = torch.tensor(sigmas, dtype=torch.float32)
            t = torch.tensor(steps, dtype=torch.float32)
            if base_name == "HeunDiscreteScheduler":   # its layout: every inner σ twice
                s = torch.cat([s[:1], s[1:-1].repeat_interleave(2), s[-1:]])
                t = torch.cat([t[:1], t[1:].repeat_interleave(2)])
            self.sigmas = s
            self.timesteps = t.to(device=device, dtype=torch.int64 if vp else torch.float32)
            self.comfy_noise_scale = initial_noise_scale(sigmas[0], float(table[-1]))
            if vp:
                self.comfy_noise_scale /= (1 + sigmas[0] ** 2) ** 0.5

        @property
        def init_noise_sigma(self):
            return getattr(self, "comfy_noise_scale", 1.0)

        @init_noise_sigma.setter
        def init_noise_sigma(self, value):  # diffusers' VP schedulers assign 1.0; the σ decide
            pass

    Reference.__name__ = Reference.__qualname__ = f"Comfy{base_name}"
    _CLASSES[base_name] = Reference
    return Reference
