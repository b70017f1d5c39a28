"""ComfyUI's ``comfy_extras.nodes_mask``: the mask nodes as Loom's built-ins, and
``composite`` (paste a ``[B, C, H, W]`` source over a destination through a mask)."""

from loom_compat.extras import module_getattr


def composite(destination, source, x, y, mask=None, multiplier=8, resize_source=False):
    from nodes.masks import composite as paste

    return paste(destination, source, x, y, mask, multiplier, resize_source)


__getattr__ = module_getattr(__name__)
