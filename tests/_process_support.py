"""What the tests ask of processes they started: is one alive, does a group exist."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """A process exists and is not a zombie (a zombie is dead, awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state follows the command name, which may itself hold ")".
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_exists(pgid: int) -> bool:
    """Some process of the group is still there (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
