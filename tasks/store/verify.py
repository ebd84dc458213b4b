"""``python -m flows verify`` and ``lineage``: reading a store for a person.

Verify: is every artifact in the store still what it was when written?
Each artifact is named by the sha256 of its bytes: verify hashes it again, reads its
sidecar (present, readable, naming this artifact), checks that every parent it names is
still in the store with the bytes its name says, and that every cache entry points at
artifacts that exist. It reports each problem on its own line; nothing is changed. A store named
by a URL is checked on a fresh download of every object the bucket holds (not on this host's
working copy, which might hide a changed object), and named by its URL.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tasks.core.errors import OptionError
from tasks.store.artifacts import NOT_ARTIFACTS, located, sha256_file
from tasks.store.lineage import ArtifactRef, Lineage, LineageError
from tasks.store.remote import Remote, is_url


@contextlib.contextmanager
def readable(location: str | Path) -> Iterator[tuple[Path, str]]:
    """A folder holding the store at ``location``, and how to name it to the user: the folder
    itself, or, for a URL, a temporary download of everything in the bucket (removed afterwards)."""
    if not is_url(location):
        yield Path(location), str(location)
        return
    remote = Remote(str(location))
    work = Path(tempfile.mkdtemp(prefix="keras-flows-verify-"))
    folder = work / "store"  # made by the first object: a prefix that holds none is no store
    try:
        for key in remote.files():
            remote.get(key, folder / key)
        yield folder, remote.url
    finally:
        shutil.rmtree(work, ignore_errors=True)


def artifacts_in(root: Path) -> list[Path]:
    """Every artifact file under ``root`` (not sidecars, temp files or the store's own folders)."""
    return sorted(p for folder in root.iterdir() if folder.is_dir() and not folder.name.startswith(("_", "."))
                  and folder.name not in NOT_ARTIFACTS for p in folder.iterdir()
                  if p.is_file() and p.suffix != ".json" and not p.name.startswith("."))


def verify(location: str | Path) -> tuple[int, list[str]]:
    """(artifacts checked, problems found) for the store at ``location`` (a folder or a URL)."""
    try:
        with readable(location) as (root, name):
            checked, problems = _verify(root)
    except OSError as error:  # a bucket that is not there, or a store that does not answer
        return 0, [f"{location}: cannot be read ({error})"]
    return checked, [problem.replace(str(root), name) for problem in problems]


def _verify(root: Path) -> tuple[int, list[str]]:
    if not root.is_dir():
        return 0, [f"{root}: no such artifact folder"]
    problems, hashes = [], {}
    files = artifacts_in(root)
    for path in files:
        digest = hashes[path] = sha256_file(path)
        if digest != path.stem:
            problems.append(f"{path}: its bytes do not match its name (sha256 {digest}): changed after it was written")
        try:
            record = Lineage.read(path.with_suffix(".json"))
        except LineageError as error:
            problems.append(str(error))
            continue
        if record.artifact.sha256 != path.stem:
            problems.append(f"{path.with_suffix('.json')}: the sidecar describes {record.artifact.sha256[:16]}..., "
                            "another artifact")
        for parent in record.parents:
            if isinstance(parent, ArtifactRef):
                problems += _parent_problems(path, located(root, parent.path), parent.sha256, hashes)
    problems += _cache_problems(root)
    return len(files), problems


def _parent_problems(path: Path, where: Path, sha256: str, hashes: dict[Path, str]) -> list[str]:
    if not where.is_file():
        return [f"{path}: its parent {where.parent.name} {where} is missing"]
    digest = hashes.get(where) or hashes.setdefault(where, sha256_file(where))
    if digest != sha256:
        return [f"{path}: its parent {where} no longer holds the bytes it was made from"]
    return []


def _cache_problems(root: Path) -> list[str]:
    problems = []
    for entry in sorted((root / "_cache").glob("*/*.json")):
        try:
            refs = json.loads(entry.read_text())
        except (OSError, ValueError):
            problems.append(f"{entry}: a cache entry that cannot be read (the stage will run again)")
            continue
        problems += [f"{entry}: points at {located(root, fields['path'])}, which is missing (the stage will run again)"
                     for fields in refs.values() if not located(root, fields["path"]).is_file()]
    return problems


def find_artifact(root: Path, target: str) -> Path:
    """The sidecar of an artifact named by its path or by a prefix of its hash."""
    if Path(target).is_file():
        return Path(target).with_suffix(".json")
    matches = sorted(m for m in root.glob(f"*/{target}*.json") if not m.parent.name.startswith(("_", "."))
                     and m.parent.name not in NOT_ARTIFACTS)  # a champion history is no artifact
    if not matches:
        raise OptionError(f"no artifact {target!r} under {root}/: give an artifact's path or a prefix "
                          "of its sha256 (the name of its file)")
    if len(matches) > 1:
        raise OptionError(f"{target!r} matches {len(matches)} artifacts; give more of the hash")
    return matches[0]


def lineage_lines(root: str | Path, target: str) -> list[str]:
    """The chain from an artifact back to the raw files, one indented line per step."""
    with readable(root) as (folder, name):
        return [line.replace(str(folder), name) for line in _lineage_lines(folder, target)]


def _lineage_lines(root: Path, target: str) -> list[str]:
    lines = []

    def walk(sidecar: Path, depth: int) -> None:
        record, pad = Lineage.read(sidecar), "  " * depth
        art = record.artifact
        lines.append(f"{pad}{record.stage}  {art.sha256[:16]}  {located(root, art.path)}  "
                     f"(flow run {record.flow_run_id or '-'}, task {record.task_name or '-'})")
        for parent in record.parents:
            if isinstance(parent, ArtifactRef):
                walk(located(root, parent.path).with_suffix(".json"), depth + 1)
            else:
                lines.append(f"{pad}  raw file {parent.file}  sha256 {parent.sha256}")

    walk(find_artifact(root, target), 0)
    return lines
