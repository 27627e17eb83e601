"""The real MTIL benchmark (work in progress)."""

from __future__ import annotations

MTIL_STREAMS: dict = {}
