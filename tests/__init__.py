"""Tests mirror src/adaline_repro: test_<module>.py pins that module's behaviour."""
