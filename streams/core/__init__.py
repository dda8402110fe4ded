"""The core every room shares: the domain's vocabulary, errors, settings, logs, Cashu primitives,
the event contracts and their schemas, deterministic ids, Kafka topics and clients, mint URLs,
redaction and web auth. It imports nothing else of proofrecon."""
