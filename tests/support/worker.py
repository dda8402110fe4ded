"""The worker and sink subprocesses and the topic reader live in streams.devworker (the demo and
the benchmarks use them too)."""

from streams.devworker import CLI, SinkProcess, WorkerProcess, process_env, read_topic

__all__ = ["CLI", "SinkProcess", "WorkerProcess", "process_env", "read_topic"]
