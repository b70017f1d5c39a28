"""diffusers' own solvers fed ComfyUI's σ: the references the parity tests and
``bench/sampling.py`` compare Loom's KSampler with, so a comparison checks the model and
the solver math on the same schedule, timesteps and initial noise. Not used for sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusion.errors import SamplingError
from diffusion.k_steps import check_sampler
from diffusion.sigma_schedules import SCHEDULER_NAMES, comfy_sigmas, initial_noise_scale, training_sigmas

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
    check_sampler(sampler_name)
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
