"""Skip markers that several test modules share."""

from __future__ import annotations

import pytest

from distill.deploy import litert

needs_litert = pytest.mark.skipif(
    bool(litert.missing_modules()),
    reason=f"the `litert` extra is not installed (missing {litert.missing_modules()})",
)
