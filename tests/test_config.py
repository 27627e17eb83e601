"""RunConfig digests: adding optional fields must not change the digest of an existing config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from clviz.config import OPTIONAL_FIELDS, RunConfig


def _legacy_digest(config: RunConfig) -> str:
    """The digest as computed before the optional fields existed."""
    values = {k: v for k, v in asdict(config).items() if k not in OPTIONAL_FIELDS}
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_default_digest_unchanged_by_optional_fields():
    for method in ("finetune", "zscl", "moe-adapters"):
        config = RunConfig(method)
        assert config.digest() == _legacy_digest(config)
    assert RunConfig("finetune").digest() == "d4cea5a225a076a6"  # the digest cached runs carry


def test_optional_fields_change_the_digest_when_set():
    base = RunConfig("finetune")
    assert RunConfig("finetune", image_size=64).digest() != base.digest()
    assert RunConfig("finetune", data_root="/data").digest() != base.digest()
    assert "image_size" in RunConfig("finetune").as_dict()  # still recorded in results.json
