"""Output-folder checks shared by every command that writes files."""

from __future__ import annotations

import os
from pathlib import Path

from vlatwin.errors import VlatwinError


def ensure_writable_folder(folder: Path, *, name: str) -> None:
    """Create ``folder`` if needed and make sure it is writable; ``name`` is the path the user gave."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VlatwinError(f"{name}: cannot create the output folder: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise VlatwinError(f"{name}: output folder is not writable")
