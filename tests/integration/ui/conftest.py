"""`fintune serve` in a thread over a real PostgreSQL (the serving tests' fixtures), for the Deployments tab."""

from tests.integration.serving.conftest import serve, serving_db  # noqa: F401 (fixtures, shared)
