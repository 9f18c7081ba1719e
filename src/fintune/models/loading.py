"""One model load at a time per process.

transformers' `from_pretrained` switches process-wide state while it builds a model (weight
initialisation and tying). Two threads loading at once can leave that state switched: measured here,
after three threads loaded MiniLM concurrently, every later causal LM of the process came back with
its tied `lm_head` on the meta device. The serving runtime (request threads, the deployment poller) and
the service's worker thread load models in threads of one process, so every fintune load holds this
lock. Re-entrant: a load may load (a GGUF conversion inside `load_causal_lm`)."""

from __future__ import annotations

import threading

LOAD_LOCK = threading.RLock()
