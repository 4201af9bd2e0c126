"""Compute-matched control cells (``controls: compute_matched``), sized once a group's methods finish.

A group is one pool, dataset and seed. Each finished method cell of the group (neither
``single_model`` nor itself self-consistency or best-of-N) has a budget: its generated tokens per
test item T, cache-served generations included. The control is self-consistency of the pool's
dev-best model (no ``model`` parameter: the method picks it on dev, as the report's reference row
does) with N samples. Its expected tokens per test item are D + N * tau: tau is the dev-best
model's generated tokens per generation and D its dev pass (every member answers every dev item
once: dev items x the members' tokens per generation, over the test items), all measured in the
group's finished cells. So N = (T - D) / tau, rounded to the nearest integer (halves up) and
clamped to [1, max_samples]; D is 0 where a member's tokens per generation is unknown. When no
finished cell measured tau, the N = 1 control runs first and tau comes from it; when tokens are
not counted at all (a backend without counts), N is the method's generations per test item less
the control's dev pass in generations (dev items x members, over the test items).
Methods with the same N share one cell, ``control-sc-N``. Only finished metrics decide N, so a
resumed sweep plans the same cells and skips the finished ones.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from moco_core.config import parse_config
from moco_core.errors import MocoError
from moco_core.report.collect import SINGLE, CellResult, read_cell
from moco_core.report.controls import CONTROL_METHODS
from moco_core.sweep.cells import Cell, cell_status
from moco_core.sweep.config import CONTROL_LABEL, SweepConfig, safe_label

CONTROL_METHOD = "self_consistency"
FINISHED = ("done", "failed")


@dataclass
class ControlPlan:
    """A group's control cells; ``probe`` means ``cells`` is the N = 1 cell that must run before the rest
    can be sized, ``waiting`` that the group's method cells are not finished yet."""

    cells: list[Cell] = field(default_factory=list)
    probe: bool = False
    waiting: bool = False


def check_controls() -> None:
    """The control cells' method must be installed (it ships with moco-methods-text)."""
    from moco_core.plugins import get_registry

    if CONTROL_METHOD not in get_registry().methods:
        raise MocoError(
            f"controls: compute_matched runs the {CONTROL_METHOD} method, which is not installed "
            "(pip install moco-methods-text)"
        )


def wants_control(cell: Cell) -> bool:
    return cell.method_key not in (SINGLE, *CONTROL_METHODS)


def control_cell(template: Cell, samples: int, control_for: list[str]) -> Cell:
    """Self-consistency with ``samples`` answers on ``template``'s pool, dataset and seed."""
    label = f"{CONTROL_LABEL}{samples}"
    name = f"{template.pool}--{label}--{template.dataset}--s{template.seed}"
    data = template.config.model_dump(mode="json")
    data.update(
        method=CONTROL_METHOD,
        params={"samples": samples},
        output_dir=str(Path(template.config.output_dir or "").parent / safe_label(name)),
    )
    config = parse_config(data, f"sweep cell {name}")
    return Cell(name, label, CONTROL_METHOD, template.dataset, template.pool, template.seed, config, control_for)


def tokens_per_generation(results: list[CellResult], model: str) -> float | None:
    """``model``'s generated tokens per generation over ``results`` (new and cache-served), None if uncounted."""
    tokens = generations = 0
    for result in results:
        compute = result.compute
        if model in (compute.get("uncounted") or []):
            continue
        tokens += int(compute.get("generated_tokens", {}).get(model, 0))
        tokens += int(compute.get("cached_tokens", {}).get(model, 0))
        generations += int(compute.get("generations", {}).get(model, 0))
        generations += int(compute.get("cached_generations", {}).get(model, 0))
    return tokens / generations if generations else None


def _dev_best(results: list[CellResult]) -> str | None:
    found = Counter(
        str(r.metrics["dev_best_single"]["model"]) for r in results if r.metrics.get("dev_best_single", {}).get("model")
    )
    return found.most_common(1)[0][0] if found else None


def dev_overhead(results: list[CellResult], models: list[str]) -> float:
    """D: the control's dev pass in tokens per test item (0 where a member's tokens are unknown)."""
    rates = [tokens_per_generation(results, model) for model in models]
    sized = [r for r in results if isinstance(r.metrics.get("dev_items"), int) and r.test_items]
    if not sized or any(rate is None for rate in rates):
        return 0.0
    return sized[0].metrics["dev_items"] * sum(rate for rate in rates if rate is not None) / sized[0].test_items


def dev_generations(results: list[CellResult], members: int) -> float:
    """The control's dev pass in generations per test item: every member answers every dev item once."""
    sized = [r for r in results if isinstance(r.metrics.get("dev_items"), int) and r.test_items]
    return sized[0].metrics["dev_items"] * members / sized[0].test_items if sized else 0.0


def samples_for(result: CellResult, tau: float | None, overhead: float, max_samples: int, dev_gens: float = 0.0) -> int:
    """N for one finished method cell: its tokens per item less the control's dev pass, over tau;
    else its generations per item less the control's dev generations (``dev_gens`` per item)."""
    tokens = result.per_item(result.tokens)
    if tokens is None or not tau:
        generations = result.per_item(result.generations)
        return clamp(generations - dev_gens if generations is not None else 1.0, max_samples)
    return clamp((tokens - overhead) / tau, max_samples)


def clamp(target: float, max_samples: int) -> int:
    """``target`` rounded to the nearest integer (halves up), within [1, max_samples]."""
    return max(1, min(max_samples, math.floor(target + 0.5)))


def plan_group(sweep: SweepConfig, group: list[Cell]) -> ControlPlan:
    """The control cells of one group, from its finished cells (see the module docstring)."""
    assert sweep.controls is not None
    methods = [c for c in group if wants_control(c)]
    if not methods:
        return ControlPlan()
    states = {c.name: cell_status(c).state for c in group}
    if any(state not in FINISHED for state in states.values()):
        return ControlPlan(waiting=True)
    finished = {c.name: read_cell(c.directory) for c in group if states[c.name] == "done"}
    if not any(c.name in finished for c in methods):
        return ControlPlan()
    results = list(finished.values())
    best = _dev_best(results)
    tau = tokens_per_generation(results, best) if best else None
    probe = control_cell(methods[0], 1, [])
    counted = any(finished[c.name].tokens is not None for c in methods if c.name in finished)
    used_probe = False
    if tau is None and counted:
        if cell_status(probe).state not in FINISHED:
            return ControlPlan([probe], probe=True)
        used_probe = True
        if cell_status(probe).state == "done":
            measured = read_cell(probe.directory)
            model = measured.metrics.get("model")
            results = [measured]
            tau = tokens_per_generation(results, str(model)) if model else None
    members = [m.name for m in methods[0].config.models]
    overhead = dev_overhead(results, members) if tau else 0.0
    dev_gens = dev_generations(list(finished.values()), len(members))
    by_samples: dict[int, list[str]] = {}
    for cell in methods:
        if cell.name in finished:
            samples = samples_for(finished[cell.name], tau, overhead, sweep.controls.max_samples, dev_gens)
            by_samples.setdefault(samples, []).append(cell.method)
    if used_probe:
        by_samples.setdefault(1, [])
    return ControlPlan([control_cell(methods[0], n, sorted(names)) for n, names in sorted(by_samples.items())])
