"""The wallet with real proofs lives in streams.devwallet (the demo uses it too)."""

from streams.devwallet import CashuWallet, Scenario, WalletProof, WalletToolError, mint_python

__all__ = ["CashuWallet", "Scenario", "WalletProof", "WalletToolError", "mint_python"]
