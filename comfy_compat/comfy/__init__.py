"""ComfyUI's ``comfy`` package as custom nodes import it, over Loom's API.

The modules packs use most exist here (``utils``, ``model_management``,
``samplers``, ``sd``, ``sample``...); any other ``comfy.*`` module or name
imports as a placeholder that raises ``NotImplementedError`` naming it when a
node actually uses it (``loom_compat.placeholders``), and Loom's start-up
summary lists, per pack, the placeholders it touched.
"""


def __getattr__(name: str):
    # ``import comfy`` then ``comfy.sd.X``: ComfyUI's submodules are usually already
    # imported there; here the first access imports the real module or a placeholder.
    if name.startswith("_"):
        raise AttributeError(f"module 'comfy' has no attribute '{name}'")
    import importlib

    return importlib.import_module(f"{__name__}.{name}")
