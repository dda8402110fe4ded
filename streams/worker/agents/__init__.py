"""The worker's agents, one module per input: token_status, melt_requests, findings (and the
sweep that feeds it), alerts. Each has `register(runtime)`."""
