"""The `proofrecon` command line: `main.main`, one module per command group."""
