"""Probe each class of trust fault through the command line, as a new user would.

    python benchmarks/trust_probes.py                    # this checkout
    python benchmarks/trust_probes.py --code /old/clone  # another checkout's clviz, same venv

Each probe runs ``clviz`` in fresh processes on the smoke stream (1-2 steps a task) in a
scratch folder and prints one row: the class, the probe, the exit code, the seconds the last
command took, and the first line of its message (or what happened). ``docs/robustness.md``
quotes these rows, before and after the change that built them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RUN = ["run", "--method", "finetune", "--stream", "smoke", "--steps", "1"]


class Prober:
    """Runs ``clviz`` with the chosen code in a scratch results root."""

    def __init__(self, code: Path | None, scratch: Path) -> None:
        self.scratch = scratch
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "CLVIZ_RESULTS": str(scratch / "runs"),
            "CLVIZ_WORLD_CACHE": str(scratch / "world"),
        }
        self.cwd = str(code) if code is not None else None
        if code is not None:
            self.env["PYTHONPATH"] = str(code)

    def clviz(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
        """(exit code, seconds, stdout, first line of the message) of one command."""
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "clviz", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**self.env, **(env or {})},
                cwd=self.cwd,  # `python -m` imports clviz from the working folder first
            )
        except subprocess.TimeoutExpired:
            return None, time.perf_counter() - started, "", f"still running after {timeout:.0f} s"
        seconds = time.perf_counter() - started
        lines = [ln for ln in proc.stderr.splitlines() if "clviz" in ln and "error" in ln]
        lines = lines or [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:]
        return proc.returncode, seconds, proc.stdout, (lines[0] if lines else "")

    def folder(self, name: str) -> Path:
        return self.scratch / name


def matrix(folder: Path) -> list[list[float]] | None:
    path = folder / "results.json"
    return json.loads(path.read_text())["matrix"] if path.is_file() else None


def stale_weights(p: Prober):
    from safetensors.torch import load_file, save_file

    from clviz.backbone import TINY_WEIGHTS

    weights = p.folder("w.safetensors")
    state = load_file(str(TINY_WEIGHTS))
    save_file(state, str(weights))
    _, _, first, _ = p.clviz(*RUN, "--pretrained", str(weights))
    save_file({k: (v.float() * 0.5).half() for k, v in state.items()}, str(weights))
    rc, s, again, line = p.clviz(*RUN, "--pretrained", str(weights))
    folder = [ln for ln in again.splitlines() if ln.startswith("results:")]
    if folder and folder == [ln for ln in first.splitlines() if ln.startswith("results:")]:
        return rc, s, f"the old matrix came back ({again.splitlines()[0][:120]})"
    return rc, s, line or f"a new run: {folder[0] if folder else again[-120:]}"


def swapped_cache(p: Prober):
    p.clviz(*RUN, "--out", str(p.folder("a")))
    p.clviz(*RUN, "--stream", "default-fewshot", "--out", str(p.folder("b")))
    files = sorted((p.folder("runs") / "_cache" / "zero-shot").glob("*.pt"))
    shutil.copy(files[0], files[1])
    rc, s, _, line = p.clviz(*RUN, "--out", str(p.folder("c")))
    rc2, s2, _, line2 = p.clviz(*RUN, "--stream", "default-fewshot", "--out", str(p.folder("d")))
    return (rc or rc2), s + s2, line if rc else line2


def foreign_tmp(p: Prober):
    out = p.folder("foreign")
    out.mkdir()
    (out / ".notes.tmp").write_text("mine")
    rc, s, _, _line = p.clviz(*RUN, "--out", str(out))
    return rc, s, f"the user's .notes.tmp {'kept' if (out / '.notes.tmp').exists() else 'DELETED'}"


def empty_out(p: Prober):
    rc, s, stdout, line = p.clviz(*RUN, "--out", "")
    return rc, s, line or stdout.strip().splitlines()[-1]


def divergence(p: Prober):
    out = str(p.folder("nan"))
    args = ["--method", "moe-adapters", "--options", '{"lr": 1e9, "ddas_steps": 1}']
    rc, s, _stdout, line = p.clviz(*RUN, *args, "--out", out)
    text = (Path(out) / "results.json").read_text() if matrix(Path(out)) else ""
    return rc, s, line + (" (results.json holds NaN)" if "NaN" in text else "")


def symlink_loop(p: Prober):
    from clviz.data.fake import make_fake_mtil

    root = make_fake_mtil(p.folder("data"), ["EuroSAT"])
    forest = next((root / "eurosat" / "2750").iterdir())
    (forest / "loop").symlink_to("..")
    (forest / "loop2").symlink_to("..")
    args = ["--profile", "mtil", "--stream", "mtil:EuroSAT", "--data-root", str(root)]
    from clviz.data.fake import save_random_weights, write_narrow_vit

    backbone = str(write_narrow_vit(p.scratch))
    weights = str(save_random_weights(backbone, p.folder("narrow.safetensors")))
    rc, s, _, line = p.clviz(
        *RUN[:3],
        *args,
        "--steps",
        "1",
        "--backbone",
        backbone,
        "--pretrained",
        weights,
        "--out",
        str(p.folder("loop")),
        timeout=60,
    )
    return rc, s, line


def rank_left_behind(p: Prober):
    out = str(p.folder("rank"))
    a = subprocess.Popen(
        [sys.executable, "-m", "clviz", *RUN[:-1], "30", "--out", out],
        env={**p.env, "RANK": "1"},
        stderr=subprocess.PIPE,
        text=True,
        cwd=p.cwd,
    )
    time.sleep(4)
    rc, s, _, line = p.clviz(*RUN[:-1], "3", "--out", out, env={"RANK": "1"})
    a.communicate(timeout=300)
    return rc, s, line or "both trained in one folder"


def local_rank(p: Prober):
    return p.clviz(*RUN, "--out", str(p.folder("lr")), env={"LOCAL_RANK": "abc", "WORLD_SIZE": "2"})


def force_features(p: Prober):
    out = p.folder("force")
    p.clviz(*RUN, "--out", str(out))
    path = out / "features.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    rc, s, _, line = p.clviz(*RUN, "--out", str(out), "--force")
    from clviz.core.integrity import IntegrityError, read_sealed

    try:
        read_sealed(path, role="features", key=None)
        state = "features.pt rebuilt"
    except (IntegrityError, TypeError):
        state = "features.pt still damaged"
    return rc, s, f"{state}: {line}"


def late(options: str, method: str = "moe-adapters"):
    def probe(p: Prober):
        return p.clviz(
            *RUN[:2],
            method,
            *RUN[3:],
            "--out",
            str(p.folder(method + options[:9])),
            "--options",
            options,
            timeout=240,
        )

    return probe


def big_seed(p: Prober):
    return p.clviz(*RUN, "--seed", str(2**64), "--out", str(p.folder("seed")))


PROBES: dict[str, tuple[str, Callable]] = {
    "stale input": ("weights file replaced at the same path", stale_weights),
    "swapped file": ("a zero-shot cache file copied over another", swapped_cache),
    "foreign file": ("the user's .notes.tmp in --out", foreign_tmp),
    "foreign file ": ('--out ""', empty_out),
    "divergence": ('moe-adapters {"lr": 1e9}', divergence),
    "hostile dataset": ("two symlink loops in a EuroSAT class folder", symlink_loop),
    "environment": ("RANK=1 left behind, two configs on one --out", rank_left_behind),
    "environment ": ("LOCAL_RANK=abc WORLD_SIZE=2", local_rank),
    "force": ("damaged features.pt of a finished run, --force", force_features),
    "late validation": ('{"generic_images": 0}', late('{"generic_images": 0}')),
    "late validation ": ('{"experts": 1000000}', late('{"experts": 1000000}')),
    "late validation  ": ("--seed 2**64", big_seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=None, help="another checkout's root")
    parser.add_argument("--only", nargs="*", default=None, help="probe classes to run")
    args = parser.parse_args()
    print("| class | probe | rc | seconds | outcome (first line) |")
    print("|---|---|---|---|---|")
    for name, (what, probe) in PROBES.items():
        if args.only and name.strip() not in args.only:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            try:
                rc, seconds, line = _row(probe(Prober(args.code, Path(scratch))))
            except Exception as err:  # a probe the old code cannot even express
                rc, seconds, line = "-", 0.0, f"probe failed: {type(err).__name__}: {err}"
        line = line.replace("|", "/")[:300]
        print(f"| {name.strip()} | {what} | {rc} | {seconds:.1f} | {line} |", flush=True)


def _row(outcome: tuple) -> tuple:
    if len(outcome) == 4:  # (rc, seconds, stdout, line)
        return outcome[0], outcome[1], outcome[3]
    return outcome


if __name__ == "__main__":
    main()
