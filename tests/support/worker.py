"""The worker subprocess and topic reader live in streams.devworker (the demo uses them too)."""

from streams.devworker import CLI, WorkerProcess, read_topic

__all__ = ["CLI", "WorkerProcess", "read_topic"]
