"""Tests of the registry client against the CNCF registry, and the helpers that start it."""
