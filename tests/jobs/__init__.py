"""Tests of background work; ``support`` holds the test-only task handlers."""
