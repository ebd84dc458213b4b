"""Finding the processes a run left behind: every process a command starts inherits its
environment, so a mark put there names them all (servers, workers, helpers, their children)."""
from __future__ import annotations

import time
from pathlib import Path


def marked(mark: str, but: tuple[int, ...] = ()) -> list[str]:
    """``pid command`` of each live process (not a zombie) whose environment holds ``mark``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in but:
            continue
        try:
            if mark.encode() in (proc / "environ").read_bytes() and ") Z" not in (proc / "stat").read_text():
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{proc.name} {command[:160]}")
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


def left_behind(mark: str, but: tuple[int, ...] = (), grace: float = 10.0) -> list[str]:
    """The marked processes still there after ``grace`` seconds (what stops on its own once it
    sees its parent gone, such as the embedded server, gets that long)."""
    deadline = time.monotonic() + grace
    while (found := marked(mark, but)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found
