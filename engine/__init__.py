"""Loom's graph engine: schema, declaration, validation, planning, caching, execution.

Pure Python: it imports neither torch nor aiohttp, and knows nothing of files or
HTTP.  It is handed a registry, a prompt and an event sink.
"""
