"""The development kit, beside the product and never in its wheel: the end-to-end demo, process
launchers for workers and sinks, a wallet with real proofs (Nutshell's, in the mint's venv), and
sample data shared by the tests and the benchmarks. Works from a checkout only."""
