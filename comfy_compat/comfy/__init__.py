"""ComfyUI's ``comfy`` package as custom nodes import it, over Loom's API.

Only the modules packs commonly import exist here (``utils``,
``model_management``, ``samplers``, ``comfy_types``); anything else fails at
import with a ``ModuleNotFoundError`` naming it, which Loom's start-up summary
reports for that pack alone.
"""
