"""Alerting on the discrepancy stream (issue 6): HIGH_SEVERITY, RATE_THRESHOLD, ANOMALY and
MINT_UNAVAILABLE alerts on `recon.alerts`, delivered to webhooks (Alertmanager v2 or JSON).

Pure logic (no Faust, no Kafka): `windows`, `anomaly`, `rules`, `engine`, `payloads`, `signals`.
Worker wiring: `agent.register(runtime)`. Delivery: `delivery`. Reading alerts back: `summary`.
"""
