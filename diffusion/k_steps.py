"""k-diffusion's step rules on an explicit σ schedule (variance-exploding space), and
the loop that runs one over a schedule.  Shared by the KSampler's own samplers
(those with no faithful diffusers scheduler) and by SamplerCustom.

A rule is called as ``rule(D, x, σ, σ_next, randn) -> (x_next, denoised)`` where ``D``
predicts the clean latent at a noise level and ``randn`` draws seeded Gaussian noise.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .errors import SamplingError
from .k_steps_unipc import UniPC


def ancestral_step(sigma_from: float, sigma_to: float, eta: float = 1.0) -> tuple[float, float]:
    """(σ_down, σ_up): where an ancestral step lands deterministically, and the noise it adds."""
    if sigma_to == 0:
        return 0.0, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2))
    return math.sqrt(sigma_to ** 2 - up ** 2), up


Denoise = Callable[[Any, float], Any]
Noise = Callable[[], Any]


class _Euler:
    def __call__(self, D: Denoise, x, s: float, s_next: float, randn: Noise):
        denoised = D(x, s)
        return x + (x - denoised) / s * (s_next - s), denoised


class _EulerAncestral:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        down, up = ancestral_step(s, s_next)
        x = x + (x - denoised) / s * (down - s)
        if s_next > 0:
            x = x + randn() * up
        return x, denoised


class _Heun:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        d = (x - denoised) / s
        if s_next == 0:
            return x + d * (s_next - s), denoised
        x_2 = x + d * (s_next - s)
        d_2 = (x_2 - D(x_2, s_next)) / s_next
        return x + (d + d_2) / 2 * (s_next - s), denoised


def _log_midpoint(a: float, b: float) -> float:
    return math.exp((math.log(a) + math.log(b)) / 2)


class _Dpm2:
    """DPM-Solver-2 (k-diffusion's ``sample_dpm_2``); ancestral adds fresh noise."""

    def __init__(self, ancestral: bool):
        self.ancestral = ancestral

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        target, up = ancestral_step(s, s_next) if self.ancestral else (s_next, 0.0)
        d = (x - denoised) / s
        if target == 0:
            x = x + d * (target - s)
        else:
            mid = _log_midpoint(s, target)
            x_2 = x + d * (mid - s)
            d_2 = (x_2 - D(x_2, mid)) / mid
            x = x + d_2 * (target - s)
        if self.ancestral and s_next > 0:
            x = x + randn() * up
        return x, denoised


class _Lms:
    """Linear multistep (order 4) over the σ already visited."""

    order = 4

    def __init__(self, sigmas: Sequence[float]):
        self.sigmas, self.ds, self.i = list(sigmas), [], 0

    def _coeff(self, order: int, i: int, j: int) -> float:
        from scipy import integrate

        t = self.sigmas

        def fn(tau):
            prod = 1.0
            for k in range(order):
                if j != k:
                    prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
            return prod

        return integrate.quad(fn, t[i], t[i + 1], epsrel=1e-4)[0]

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        self.ds = (self.ds + [(x - denoised) / s])[-self.order:]
        order = min(self.i + 1, self.order)
        coeffs = [self._coeff(order, self.i, j) for j in range(order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(self.ds)))
        self.i += 1
        return x, denoised


class _Dpmpp2sAncestral:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        down, up = ancestral_step(s, s_next)
        if down == 0:
            x = x + (x - denoised) / s * (down - s)
        else:  # a DPM-Solver++(2S) step to sigma_down, then fresh noise
            t, t_next = -math.log(s), -math.log(down)
            h = t_next - t
            s_mid = math.exp(-(t + 0.5 * h))
            x_2 = (s_mid / s) * x - math.expm1(-0.5 * h) * denoised
            denoised_2 = D(x_2, s_mid)
            x = (down / s) * x - math.expm1(-h) * denoised_2
        if s_next > 0:
            x = x + randn() * up
        return x, denoised


def brownian_pair(randn: Noise, s: float, s_mid: float, s_next: float):
    """Unit-variance noise for the two nested intervals [s_mid, s] and [s_next, s] of one
    Brownian path, as k-diffusion's Brownian-tree sampler gives them: the path's increment
    over the whole step contains the one over its first half, so the two are correlated."""
    a, b = randn(), randn()
    first, second = math.sqrt(s - s_mid), math.sqrt(s_mid - s_next)
    return a, (a * first + b * second) / math.sqrt(s - s_next)


class _DpmppSde:
    """DPM-Solver++ SDE (k-diffusion's ``sample_dpmpp_sde``, eta 1, r ½): an ancestral
    DPM-Solver++ step to the log-σ midpoint, then one over the whole step using the
    midpoint's prediction; the last step (to σ 0) is Euler."""

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        if s_next == 0:
            return x + (x - denoised) / s * (s_next - s), denoised
        s_mid = math.sqrt(s * s_next)  # σ at t + h/2 with t = -log σ
        noise_mid, noise_next = brownian_pair(randn, s, s_mid, s_next)
        x_2 = self._ancestral(x, denoised, s, s_mid, noise_mid)
        return self._ancestral(x, D(x_2, s_mid), s, s_next, noise_next), denoised

    @staticmethod
    def _ancestral(x, denoised, s, s_to, noise):
        down, up = ancestral_step(s, s_to)
        return (down / s) * x - math.expm1(math.log(down / s)) * denoised + noise * up


class _Dpmpp2m:
    """DPM-Solver++(2M); with ``eta`` > 0 the SDE variant (midpoint), Gaussian noise."""

    def __init__(self, eta: float = 0.0):
        self.eta, self.old, self.h_last = eta, None, None

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            eta_h = self.eta * h
            if self.eta == 0:
                d = denoised
                if self.old is not None:
                    r = self.h_last / h
                    d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * self.old
                x = (s_next / s) * x - math.expm1(-h) * d
            else:
                x = (s_next / s) * math.exp(-eta_h) * x + (-math.expm1(-h - eta_h)) * denoised
                if self.old is not None:
                    r = self.h_last / h
                    x = x + 0.5 * (-math.expm1(-h - eta_h)) * (1 / r) * (denoised - self.old)
                x = x + randn() * s_next * math.sqrt(-math.expm1(-2 * eta_h))
            self.h_last = h
        self.old = denoised
        return x, denoised


class _Dpmpp3mSde:
    def __init__(self, eta: float = 1.0):
        self.eta = eta
        self.d_1 = self.d_2 = self.h_1 = self.h_2 = None

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        if s_next == 0:
            x = denoised
        else:
            h = math.log(s) - math.log(s_next)
            h_eta = h * (self.eta + 1)
            x = math.exp(-h_eta) * x + (-math.expm1(-h_eta)) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if self.h_2 is not None:
                r0, r1 = self.h_1 / h, self.h_2 / h
                d1_0 = (denoised - self.d_1) / r0
                d1_1 = (self.d_1 - self.d_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif self.h_1 is not None:
                x = x + phi_2 * (denoised - self.d_1) / (self.h_1 / h)
            if self.eta:
                x = x + randn() * s_next * math.sqrt(-math.expm1(-2 * h * self.eta))
            self.h_1, self.h_2 = h, self.h_1
        self.d_1, self.d_2 = denoised, self.d_1
        return x, denoised


class _Ipndm:
    """iPNDM (Zhang & Chen's improved pseudo-numerical method, k-diffusion/ComfyUI
    ``sample_ipndm``): Adams-Bashforth in σ on dx/dσ with fixed weights, warming up from
    order 1 to 4; a step to σ 0 lands on the prediction."""

    #: Adams-Bashforth weights by order, newest derivative first
    WEIGHTS = ((1,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))

    def __init__(self):
        self.ds: list = []  # the last derivatives, newest first

    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        self.ds = [(x - denoised) / s] + self.ds[:len(self.WEIGHTS) - 1]
        if s_next == 0:
            return denoised, denoised
        slope = sum(w * d for w, d in zip(self.WEIGHTS[len(self.ds) - 1], self.ds))
        return x + (s_next - s) * slope, denoised


class _Lcm:
    def __call__(self, D, x, s, s_next, randn):
        denoised = D(x, s)
        return (denoised + randn() * s_next if s_next > 0 else denoised), denoised


#: sampler name → its rule's factory, given the run's σ; in ComfyUI's order.  The ``_gpu``
#: names are ComfyUI's for the same samplers with their Brownian noise drawn on the GPU:
#: here noise always comes from the seed on the CPU, so they are the same rules.
_RULES: dict[str, Callable[[Sequence[float]], Any]] = {
    "euler": lambda sigmas: _Euler(),
    "euler_ancestral": lambda sigmas: _EulerAncestral(),
    "heun": lambda sigmas: _Heun(),
    "dpm_2": lambda sigmas: _Dpm2(False),
    "dpm_2_ancestral": lambda sigmas: _Dpm2(True),
    "lms": _Lms,
    "dpmpp_2s_ancestral": lambda sigmas: _Dpmpp2sAncestral(),
    "dpmpp_sde": lambda sigmas: _DpmppSde(),
    "dpmpp_sde_gpu": lambda sigmas: _DpmppSde(),
    "dpmpp_2m": lambda sigmas: _Dpmpp2m(),
    "dpmpp_2m_sde": lambda sigmas: _Dpmpp2m(eta=1.0),
    "dpmpp_2m_sde_gpu": lambda sigmas: _Dpmpp2m(eta=1.0),
    "dpmpp_3m_sde": lambda sigmas: _Dpmpp3mSde(),
    "dpmpp_3m_sde_gpu": lambda sigmas: _Dpmpp3mSde(),
    "ddim": lambda sigmas: _Euler(),  # ComfyUI's ddim is Euler on the given σ
    "uni_pc": lambda sigmas: UniPC(sigmas, "bh1"),
    "uni_pc_bh2": lambda sigmas: UniPC(sigmas, "bh2"),
    "lcm": lambda sigmas: _Lcm(),
    "ipndm": lambda sigmas: _Ipndm(),
}

#: every sampler that runs on an explicit σ schedule (what KSamplerSelect offers)
RULE_NAMES = tuple(_RULES)


def step_rule(name: str, sigmas: Sequence[float]):
    """The step rule for sampler ``name`` on ``sigmas`` (rules with history are fresh per run)."""
    if name not in _RULES:
        raise SamplingError(f"sampler {name!r} is not available on a custom sigma schedule; "
                            f"choose one of {', '.join(RULE_NAMES)}")
    return _RULES[name](sigmas)


def run_steps(rule, D: Denoise, x, sigmas: Sequence[float], randn: Noise,
              callback: Callable[[int, int, Any], None] | None = None):
    """Step ``x`` through ``sigmas`` with ``rule``; returns (x, the last clean-latent prediction)."""
    total = len(sigmas) - 1
    denoised = None
    for i in range(total):
        x, denoised = rule(D, x, sigmas[i], sigmas[i + 1], randn)
        if callback is not None:
            callback(i + 1, total, denoised)
    return x, denoised
