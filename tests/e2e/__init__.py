"""End-to-end tests (marked slow: `make test-slow`)."""
