"""Atomic writes keep the old file when writing fails."""

from __future__ import annotations

import pytest

from clviz.core.io import atomic_path, write_json


def test_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "result.json"
    write_json(target, {"finished": True})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{half a fi")
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith('{\n  "finished": true')
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    target = tmp_path / "x.json"
    write_json(target, [1])
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
