"""An example Loom plug-in: one node in each declaration style.

Drop a folder like this one into ``custom_nodes/`` and Loom imports it at
start-up.  A plug-in exports its nodes through module-level names:

``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``
    ComfyUI's V1 interface: node id → class with ``INPUT_TYPES``,
    ``RETURN_TYPES``, ``FUNCTION``, ``CATEGORY``...  Packs written for ComfyUI
    work unchanged.  See :mod:`.repeat_text` (``ExampleRepeatText``).

``LOOM_NODES``
    Loom's typed declaration: a function decorated with ``@node`` whose
    annotated parameters are the inputs and whose return annotation is the
    output.  Less boilerplate, checked when the plug-in loads.  See
    :mod:`.grayscale` (``ExampleGrayscale``).

Both compile to the same schema, so the editor, validation and
``/object_info`` treat them alike.  Keep heavy imports (torch, numpy, PIL)
inside the node functions: Loom starts without importing torch.

Tests live in ``tests/`` next to the code; pytest collects ``custom_nodes/``.
"""

from .grayscale import ExampleGrayscale
from .repeat_text import ExampleRepeatText

NODE_CLASS_MAPPINGS = {"ExampleRepeatText": ExampleRepeatText}
NODE_DISPLAY_NAME_MAPPINGS = {"ExampleRepeatText": "Repeat Text (example)"}

LOOM_NODES = [ExampleGrayscale]
