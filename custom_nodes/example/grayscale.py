"""A node in Loom's typed style: the function's signature is its schema."""

from engine.declare import Float, Socket, node
from engine.node import NodeContext

IMAGE = Socket("IMAGE")

#: Rec. 601 luma weights, as most image tools use for "grayscale".
LUMA = (0.299, 0.587, 0.114)


@node(category="example", display_name="Grayscale (example)")
def ExampleGrayscale(
    ctx: NodeContext,
    image: IMAGE,
    strength: float = Float(1.0, min=0.0, max=1.0, step=0.05, tooltip="0 keeps the colours, 1 is fully gray"),
) -> IMAGE:
    """Turns images gray by their luma; `strength` blends between colour and gray."""
    import torch  # inside the function: Loom starts without torch

    weights = torch.tensor(LUMA, dtype=image.dtype, device=image.device)
    result = image.clone()
    for index in range(image.shape[0]):
        # Reports progress to the editor, and stops here if the user interrupted.
        ctx.progress(index, image.shape[0])
        luma = (image[index, ..., :3] * weights).sum(dim=-1, keepdim=True)
        result[index, ..., :3] = image[index, ..., :3] * (1 - strength) + luma * strength
    ctx.progress(image.shape[0], image.shape[0])
    return result
