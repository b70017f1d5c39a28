"""ComfyUI's ``comfy_extras``: each ``comfy_extras.<module>`` gives Loom's
built-in node of a requested name as a ComfyUI class (``from
comfy_extras.nodes_custom_sampler import SamplerCustom``), and a placeholder
for what Loom does not have.  Modules not written out here are made on import
by ``loom_compat.placeholders`` with the same rule."""
