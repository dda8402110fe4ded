"""Helpers the benchmarks run beside the real stack (a rate-limiting proxy, a Kafka echo)."""
