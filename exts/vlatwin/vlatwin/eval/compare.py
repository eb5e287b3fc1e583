"""``vlatwin eval compare A B``: do two evaluations rank the same policies the same way?

A *result table* maps a policy label to its success rate in [0, 1]. It is loaded from any of:

- an eval output folder (its ``results.json``: label -> overall, or one task's, success rate);
- a folder of eval output folders, one per policy;
- a ``results.json`` file itself;
- a JSON file ``{"label": rate, ...}``, or a JSON list of ``results.json`` paths / eval folders
  (relative paths resolve against the list file's folder);
- a CSV file with columns ``policy,success_rate`` (a header row is optional).

:func:`compare` pairs the policies both tables have and reports SimplerEnv's MMRV and Pearson r.
**A is the simulation and B the real robot** (``mean_maximum_rank_violation(perf_sim=A, perf_real=B)``):
MMRV is asymmetric, it weighs each rank violation by the gap in B. To compare two twins, put the one you
trust more (the reference) second.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from vlatwin.errors import VlatwinError
from vlatwin.eval.stats import mean_maximum_rank_violation, pearson

RESULTS_NAME = "results.json"


@dataclass(frozen=True)
class CompareResult:
    """Success rates of the policies both tables share, and their agreement."""

    policies: list[str]
    """Policy labels, in table A's order."""
    a: list[float]
    """Success rate of each policy in table A (treated as sim) [0, 1]."""
    b: list[float]
    """Success rate of each policy in table B (treated as real) [0, 1]."""
    mmrv: float
    """Mean maximum rank violation, ``mean_maximum_rank_violation(perf_sim=a, perf_real=b)``; 0 is best."""
    pearson: float | None
    """Pearson r of a and b; None when either table is constant (r undefined)."""
    only_a: list[str]
    """Labels only table A has (ignored)."""
    only_b: list[str]
    """Labels only table B has (ignored)."""
    name_a: str = "A"
    name_b: str = "B"

    def to_dict(self) -> dict:
        return {
            "policies": list(self.policies),
            "a": list(self.a),
            "b": list(self.b),
            "mmrv": self.mmrv,
            "pearson": self.pearson,
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
            "name_a": self.name_a,
            "name_b": self.name_b,
        }


# ------------------------------------------------------------------------------------------ loading
def _rate(value, where: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise VlatwinError(f"{where}: success rate {value!r} is not a number") from None
    if not math.isfinite(rate) or rate < 0.0 or rate > 1.0:
        raise VlatwinError(f"{where}: success rate {value!r} must be in [0, 1] (a fraction, not a percentage)")
    return rate


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VlatwinError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise VlatwinError(f"{path}: not valid JSON ({exc})") from None


def _is_results(data) -> bool:
    """A ``results.json`` object (as opposed to a ``{label: rate}`` table)."""
    return isinstance(data, dict) and (isinstance(data.get("overall"), dict) or isinstance(data.get("tasks"), dict))


def _entry_from_results(data: dict, where: Path, task: str | None) -> tuple[str, float]:
    label = data.get("label") or (data.get("policy") or {}).get("spec")
    if not label:
        label = where.parent.name if where.name == RESULTS_NAME else where.stem
    if task is None:
        block = data.get("overall") or {}
    else:
        tasks = data.get("tasks") or {}
        if task not in tasks:
            raise VlatwinError(f"{where}: no task {task!r} (it has: {', '.join(tasks) or 'none'})")
        block = tasks[task]
    rate = block.get("success_rate")
    if rate is None and block.get("episodes"):
        rate = int(block.get("successes") or 0) / int(block["episodes"])
    if rate is None:
        raise VlatwinError(f"{where}: no success_rate in {'overall' if task is None else 'tasks.' + task}")
    return str(label), _rate(rate, str(where))


def _add(table: dict[str, float], label: str, rate: float, where) -> None:
    if label in table:
        raise VlatwinError(f"{where}: policy label {label!r} appears twice; give the runs distinct --label values")
    table[label] = rate


def _load_results_path(path: Path, task: str | None) -> tuple[str, float]:
    file = path / RESULTS_NAME if path.is_dir() else path
    if not file.is_file():
        raise VlatwinError(f"{path}: no {RESULTS_NAME} here (is it a `vlatwin eval --out` folder?)")
    data = _read_json(file)
    if not isinstance(data, dict):
        raise VlatwinError(f"{file}: expected the results object of `vlatwin eval`")
    return _entry_from_results(data, file, task)


def _load_csv(path: Path) -> dict[str, float]:
    table: dict[str, float] = {}
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise VlatwinError(f"{path}: cannot read ({exc.strerror or exc})") from None
    seen_row = False
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2:
            raise VlatwinError(f"{path}:{number}: expected 'policy,success_rate', got {','.join(cells)!r}")
        first, seen_row = not seen_row, True
        if first and not _is_number(cells[1]):
            continue  # header row, e.g. "policy,success_rate"
        _add(table, cells[0], _rate(cells[1], f"{path}:{number}"), f"{path}:{number}")
    return table


def load_table(path: str | Path, *, task: str | None = None) -> dict[str, float]:
    """A result table ``{policy label: success rate}`` from any of the sources in the module docstring.

    Args:
        path: Eval folder, folder of eval folders, results.json, JSON table / list, or CSV.
        task: Use this task's success rate from each results.json instead of the overall one.
    """
    path = Path(path)
    if not path.exists():
        raise VlatwinError(f"{path}: no such file or folder")
    table: dict[str, float] = {}
    if path.is_dir():
        if (path / RESULTS_NAME).is_file():
            label, rate = _load_results_path(path, task)
            return {label: rate}
        runs = sorted(p for p in path.iterdir() if p.is_dir() and (p / RESULTS_NAME).is_file())
        if not runs:
            raise VlatwinError(f"{path}: neither a {RESULTS_NAME} nor sub-folders with one")
        for run in runs:
            label, rate = _load_results_path(run, task)
            _add(table, label, rate, run)
        return table
    if path.suffix.lower() == ".csv":
        if task is not None:
            raise VlatwinError(f"{path}: a CSV table has one rate per policy; --task applies to results.json only")
        table = _load_csv(path)
    else:
        data = _read_json(path)
        if isinstance(data, dict) and _is_results(data):
            label, rate = _entry_from_results(data, path, task)
            return {label: rate}
        if isinstance(data, dict):
            for label, rate in data.items():
                _add(table, str(label), _rate(rate, f"{path}: {label}"), path)
        elif isinstance(data, list):
            for item in data:
                if not isinstance(item, str):
                    raise VlatwinError(f"{path}: a JSON list must hold paths to results.json files, got {item!r}")
                entry = Path(item) if Path(item).is_absolute() else path.parent / item
                label, rate = _load_results_path(entry, task)
                _add(table, label, rate, entry)
        else:
            raise VlatwinError(f"{path}: expected {{label: rate}}, a list of results.json paths, or a results.json")
    if not table:
        raise VlatwinError(f"{path}: the table is empty")
    return table


# ------------------------------------------------------------------------------------------ comparing
def compare(
    table_a: dict[str, float], table_b: dict[str, float], *, name_a: str = "A", name_b: str = "B"
) -> CompareResult:
    """MMRV and Pearson r over the policies both tables have; A is treated as sim, B as real.

    Raises:
        VlatwinError: fewer than 2 shared policies.
    """
    shared = [label for label in table_a if label in table_b]
    if len(shared) < 2:
        raise VlatwinError(
            f"compare: need at least 2 policies in both tables, found {len(shared)} "
            f"({name_a}: {', '.join(table_a) or 'none'}; {name_b}: {', '.join(table_b) or 'none'})"
        )
    a = [float(table_a[label]) for label in shared]
    b = [float(table_b[label]) for label in shared]
    try:
        r: float | None = pearson(a, b)
    except VlatwinError:
        r = None  # a constant table: r is undefined, MMRV still is
    return CompareResult(
        policies=shared,
        a=a,
        b=b,
        mmrv=mean_maximum_rank_violation(a, b),
        pearson=r,
        only_a=[label for label in table_a if label not in table_b],
        only_b=[label for label in table_b if label not in table_a],
        name_a=name_a,
        name_b=name_b,
    )


def compare_paths(a_path: str | Path, b_path: str | Path, *, task: str | None = None) -> CompareResult:
    """Load two result tables (see :func:`load_table`) and :func:`compare` them; ``a_path`` is sim, ``b_path`` real."""
    return compare(load_table(a_path, task=task), load_table(b_path, task=task), name_a=str(a_path), name_b=str(b_path))


def _ranks(values: list[float]) -> list[int]:
    """1 = best; ties share the best rank ("min" method)."""
    return [1 + sum(1 for other in values if other > v) for v in values]


def format_compare(result: CompareResult) -> str:
    """An aligned text table (rate and rank in each) followed by MMRV and Pearson r."""
    rank_a, rank_b = _ranks(result.a), _ranks(result.b)
    head = ("policy", "A (sim)", "rank", "B (real)", "rank")
    rows = [
        (p, f"{a:.3f}", str(ra), f"{b:.3f}", str(rb))
        for p, a, ra, b, rb in zip(result.policies, result.a, rank_a, result.b, rank_b, strict=True)
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [f"A (sim):  {result.name_a}", f"B (real): {result.name_b}", "", line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append("")
    out.append(f"MMRV      {result.mmrv:.4f}   (mean maximum rank violation, A as sim, B as real; 0 = same ranking)")
    r_text = (
        "undefined (one table has the same rate for every policy)"
        if result.pearson is None
        else f"{result.pearson:.4f}"
    )
    out.append(f"Pearson r {r_text}")
    if result.only_a or result.only_b:
        out.append("")
        if result.only_a:
            out.append(f"only in A (ignored): {', '.join(result.only_a)}")
        if result.only_b:
            out.append(f"only in B (ignored): {', '.join(result.only_b)}")
    return "\n".join(out)


__all__ = ["CompareResult", "compare", "compare_paths", "format_compare", "load_table"]
