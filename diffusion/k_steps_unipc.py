"""UniPC (Zhao et al. 2023, "UniPC: a unified predictor-corrector framework") as a step
rule on an explicit σ schedule, the way ComfyUI's ``uni_pc`` (B(h) = h, "bh1") and
``uni_pc_bh2`` (B(h) = eᵸ − 1) run it: data prediction, multistep, order up to 3 with
lower orders for the first and last steps, a corrector after every step but the last,
and a final σ of 0 replaced by 0.001 (log σ must stay finite).

UniPC is usually written in variance-preserving space; with λ = −log σ its data-prediction
updates carry the same coefficients in k-diffusion's variance-exploding space, where the
step rules work, because every term scales by the same α_t (x_VP = α·x_VE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

#: ComfyUI steps to this σ instead of 0, where λ = −log σ is infinite.
FINAL_SIGMA = 0.001
MAX_ORDER = 3


@dataclass
class _Correction:
    """What the corrector needs from the predictor step that led to the current x."""

    base: Any            # x_t_ — the first-order part of the prediction
    b_h: float
    rhos: list[float]    # corrector weights; the last multiplies the new model difference
    d1s: list[Any]       # scaled model differences of the older predictions
    model_0: Any         # the prediction the step started from


def _coefficients(rks: Sequence[float], hh: float, b_h: float, order: int) -> tuple[list[list[float]], list[float]]:
    """UniPC's linear system: R[k] = rks^k, b[k] = k!·φ_{k+1}(hh)·hh / B(h)."""
    h_phi_k = math.expm1(hh) / hh - 1
    factorial = 1
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append([r ** (i - 1) for r in rks])
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return rows, b


def _solve(rows: list[list[float]], b: list[float]) -> list[float]:
    import numpy as np

    return [float(v) for v in np.linalg.solve(np.array(rows, dtype=np.float64), np.array(b, dtype=np.float64))]


class UniPC:
    """One UniPC run over ``sigmas`` (fresh per run: it keeps the last predictions)."""

    def __init__(self, sigmas: Sequence[float], variant: str):
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"UniPC variant must be 'bh1' or 'bh2', got {variant!r}")
        self.variant = variant
        self.steps = len(sigmas) - 1
        self.done = 0
        self.history: list[tuple[float, Any]] = []   # (λ, prediction), newest last
        self.pending: _Correction | None = None

    def _order(self) -> int:
        """Warm up from order 1 and come back down to 1 for the last steps (lower_order_final)."""
        target = self.done + 1
        return max(1, min(MAX_ORDER, target, self.steps + 1 - target))

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if self.pending is not None:
            x = self._correct(self.pending, denoised)
        self.history = (self.history + [(-math.log(s), denoised)])[-MAX_ORDER:]
        x, self.pending = self._predict(x, s, s_next if s_next > 0 else FINAL_SIGMA, self._order())
        self.done += 1
        return x, denoised

    def _predict(self, x, s, s_to, order):
        lam_0, model_0 = self.history[-1]
        h = -math.log(s_to) - lam_0
        hh = -h  # data prediction
        b_h = hh if self.variant == "bh1" else math.expm1(hh)
        rks, d1s = [], []
        for lam_i, model_i in reversed(self.history[-order:-1]):
            rk = (lam_i - lam_0) / h
            rks.append(rk)
            d1s.append((model_i - model_0) / rk)
        rks.append(1.0)
        rows, b = _coefficients(rks, hh, b_h, order)
        base = (s_to / s) * x - math.expm1(hh) * model_0
        x_t = base
        if d1s:
            rhos_p = [0.5] if order == 2 else _solve([r[:-1] for r in rows[:-1]], b[:-1])
            x_t = base - b_h * sum(rho * d for rho, d in zip(rhos_p, d1s))
        rhos_c = [0.5] if order == 1 else _solve(rows, b)
        return x_t, _Correction(base, b_h, rhos_c, d1s, model_0)

    @staticmethod
    def _correct(c: _Correction, model_t):
        residual = c.rhos[-1] * (model_t - c.model_0)
        for rho, d in zip(c.rhos[:-1], c.d1s):
            residual = residual + rho * d
        return c.base - c.b_h * residual
