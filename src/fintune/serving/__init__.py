"""Serving tuned models from `fintune serve`: OpenAI-compatible endpoints, search/ask/predict, and named
deployments with blue/green switch and rollback (see `routes`)."""
