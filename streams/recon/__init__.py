"""Reconciliation, pure: the classification table, the policy and its two deciding rules, the
diff against open discrepancies, the ledger's records and proof index, the output builders."""
