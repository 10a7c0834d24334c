"""Fake servers and helpers for tests (real protocols on 127.0.0.1)."""
