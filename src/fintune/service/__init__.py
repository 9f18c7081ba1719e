"""fintune as a service: a fine-tuning task API (FastAPI) over a PostgreSQL job engine (procrastinate).

`fintune serve` runs the API and a worker; `fintune worker` adds workers on this or other machines. Tasks
live in fintune's own tables (`fintune_tasks`, `fintune_task_events`); procrastinate's jobs carry only a
task id, so the engine decides who runs what and when, and fintune records what happened.
"""
