"""Search spaces declared as data: ``name=kind(args)`` on the command line, or a TOML table.

    learning_rate=loguniform(1e-4,1e-2) depth=int(1,4) width=int(1,99) optimizer=choice(sgd,adam)

Only training parameters a registry model takes can be searched; an unknown name, a range
whose low end is not below its high end, or a log range that touches zero is refused before
anything trains, with a message naming it. A space turns into Optuna distributions (the
proposal logic is Optuna's) and into grid points for the grid and sweep strategies.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import OptionError

# what a trial may vary, and the type its values take (the rest of TrainParams stays fixed)
SEARCHABLE: dict[str, type] = {"learning_rate": float, "depth": int, "width": int, "optimizer": str,
                               "activation": str, "initializer": str, "batch_size": int, "schedule": str}
KINDS = ("loguniform", "uniform", "int", "choice")


class SpaceError(OptionError):
    """A search space that cannot be searched: says which parameter and why."""


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high))
        return FloatDistribution(self.low, self.high, log=self.kind == "loguniform")

    def points(self, n: int) -> list[Any]:
        """``n`` evenly spread values (log-spaced for loguniform) for a grid; every choice."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return sorted({round(self.low + (self.high - self.low) * i / max(n - 1, 1)) for i in range(n)})
        if self.kind == "loguniform":
            lo, hi = math.log10(self.low), math.log10(self.high)
            return [float(f"{10 ** (lo + (hi - lo) * i / max(n - 1, 1)):.3g}") for i in range(n)]
        return [self.low + (self.high - self.low) * i / max(n - 1, 1) for i in range(n)]


Space = tuple[Dimension, ...]
_ITEM = re.compile(r"^([a-z_]+)=([a-z]+)\((.*)\)$")


def dimension(name: str, kind: str, args: list[Any]) -> Dimension:
    """One checked dimension; every refusal names the parameter."""
    if name not in SEARCHABLE:
        raise SpaceError(f"cannot search {name!r}: searchable parameters are {', '.join(SEARCHABLE)}")
    if kind not in KINDS:
        raise SpaceError(f"{name}: unknown kind {kind!r}; use {', '.join(KINDS)}")
    if kind == "choice":
        if not args:
            raise SpaceError(f"{name}: choice() needs at least one value")
        return Dimension(name, kind, choices=tuple(SEARCHABLE[name](a) for a in args))
    if len(args) != 2:
        raise SpaceError(f"{name}: {kind}(low,high) takes two numbers, got {len(args)}")
    try:
        low, high = (int(a) if kind == "int" else float(a) for a in args)
    except ValueError:
        raise SpaceError(f"{name}: {kind}({args[0]},{args[1]}) needs numbers") from None
    if SEARCHABLE[name] is str:
        raise SpaceError(f"{name} takes names, not numbers: use choice(...)")
    if not low < high:
        raise SpaceError(f"{name}: the range's low end {low} must be below its high end {high}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{name}: loguniform needs a positive low end, got {low}")
    if name in ("depth", "width", "batch_size") and (kind != "int" or low < 1):
        raise SpaceError(f"{name}: use int(low,high) with low >= 1")
    return Dimension(name, kind, low, high)


def parse_space(text: str) -> Space:
    """``"learning_rate=loguniform(1e-4,1e-2) depth=int(1,4)"`` -> dimensions, in order."""
    dims = []
    for item in text.split():
        match = _ITEM.match(item.strip())
        if not match:
            raise SpaceError(f"cannot read {item!r}: write name=kind(args), e.g. depth=int(1,4)")
        name, kind, args = match.groups()
        dims.append(dimension(name, kind, [a.strip() for a in args.split(",") if a.strip()]))
    return _unique(dims)


def read_space(path: str | Path) -> Space:
    """A TOML file: ``[space]`` with ``name = {kind = [args]}``, e.g. ``depth = {int = [1, 4]}``."""
    try:
        table = tomllib.loads(Path(path).read_text())["space"]
    except FileNotFoundError:
        raise SpaceError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, KeyError) as error:
        raise SpaceError(f"{path}: not a TOML file with a [space] table ({error})") from None
    dims = []
    for name, spec in table.items():
        if not isinstance(spec, dict) or len(spec) != 1:
            raise SpaceError(f"{path}: {name} = {spec!r}; write {name} = {{int = [1, 4]}}")
        (kind, args), = spec.items()
        dims.append(dimension(name, kind, list(args)))
    return _unique(dims)


def _unique(dims: list[Dimension]) -> Space:
    names = [d.name for d in dims]
    if not dims:
        raise SpaceError("the search space is empty")
    if len(set(names)) != len(names):
        raise SpaceError(f"a parameter is given twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return tuple(dims)


# The course's space (keras-course.txt l. 975-981): hidden_layers 1..4, layer_size 1..99,
# learning_rate reciprocal(1e-4, 1e-2), i.e. log-uniform.
COURSE_SPACE = parse_space("depth=int(1,4) width=int(1,99) learning_rate=loguniform(1e-4,1e-2)")
# The course's hand-tuned loop (l. 896-930): one parameter over a list.
COURSE_SWEEP = Dimension("learning_rate", "choice", choices=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2))
