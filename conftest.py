"""Suite-wide settings: nothing may reach for a model hub during tests."""

import os

# Read by huggingface_hub at import, so it must be set before anything imports it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

# The session's one Chromium, shared by every browser test directory.
pytest_plugins = ["tests.browser_session"]
