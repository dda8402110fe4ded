"""The fault campaign: several workers on a replicated cluster, faults one after another."""
