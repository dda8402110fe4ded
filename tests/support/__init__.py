"""Test helpers: real Nutshell mints in subprocesses, the Nutshell wallet tool, a fault mint."""
