"""What a result depends on besides its config, recorded in ``metrics.json`` as ``provenance``.

Scores move with library versions (math-verify's equivalence, transformers' generation), with
the hardware (kernels differ between GPUs) and with the exact weights and data, so a number
in a paper needs all of them next to it: when it was made, by which moco and plugins, from
which commit of the working tree, on which device, with which weights and data.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "datasets", "mergekit", "math-verify", "peft", "trl", "numpy", "tokenizers")


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed versions of the libraries scores and generations depend on (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_state(folder: str | Path = ".") -> dict[str, Any] | None:
    """The commit checked out in ``folder``'s git working tree and whether tracked files changed; None outside git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(changes), "folder": str(Path(folder).resolve())}


def device_info(device: str) -> dict[str, Any]:
    """The device a run used and, on CUDA, the GPU's name (torch is consulted only if already imported)."""
    info: dict[str, Any] = {"device": device, "gpu": None, "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        index = int(device.partition(":")[2] or 0)
        info["gpu"] = torch.cuda.get_device_name(index)
    return info


def collect_provenance(
    plugin_versions: dict[str, str], device: str, models: dict[str, Any], data: dict[str, str]
) -> dict[str, Any]:
    """The ``provenance`` block: time, versions, git state, Python, device, model identities, data fingerprint."""
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "moco": plugin_versions.get("moco-core"),
        "plugins": plugin_versions,
        "libraries": library_versions(),
        "python": platform.python_version(),
        "git": git_state(),
        "hardware": device_info(device),
        "models": models,
        "data": data,
    }
