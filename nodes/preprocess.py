"""Model-free ControlNet preprocessors: Canny (ComfyUI's name and inputs) and a
luma threshold.  The work is in :mod:`diffusion.preprocess` (imported lazily)."""

from __future__ import annotations

from engine.declare import Float, node

from .imaging import IMAGE


@node(category="image/preprocessors", display_name="Canny")
def Canny(
    image: IMAGE,
    low_threshold: float = Float(0.4, min=0.01, max=0.99, step=0.01),
    high_threshold: float = Float(0.8, min=0.01, max=0.99, step=0.01),
) -> IMAGE:
    """Canny edge map (white edges on black), e.g. for a canny ControlNet."""
    from diffusion.preprocess import canny

    return canny(image, low_threshold, high_threshold)


@node(category="image/preprocessors", display_name="Image Threshold")
def ImageThreshold(image: IMAGE, threshold: float = Float(0.5, min=0.0, max=1.0, step=0.01)) -> IMAGE:
    """White where a pixel's brightness is above the threshold, black elsewhere."""
    from diffusion.preprocess import threshold as luma_threshold

    return luma_threshold(image, threshold)
