"""Test suite (fast by default; `-m slow` for end-to-end)."""
