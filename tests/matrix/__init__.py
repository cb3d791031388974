"""The conversion matrix: shared conversations through every provider family, checked with official SDKs."""
