"""`fintune ui`: a Gradio app over the library, one module per tab (the tab's functions are plain, testable)."""

import os

# Before any tab module imports gradio: the UI must not phone home (and CI machines are offline).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
