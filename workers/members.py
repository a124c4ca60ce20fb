"""Member expansion: the pack slots one job trains in, and how its result is chosen.

A plain job is one member keyed by its id. A job with `learning_rate: "auto"` becomes one
member per candidate rate (registry/vera/auto_lr.py: keys f"{job_id}#lr{i}"); they train
side by side in the pack, and once every one has finished or failed, `choose` picks the
job's result from theirs (with extra metrics for its version). The pack runner calls
nothing else, so another expansion is one more branch here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from registry.vera import auto_lr
from workers.job_io import JobSpec


@dataclass
class MemberPlan:
    """One slot of the pack: a key, its args and rows."""

    key: str
    args: object  # registry.vera.train.TrainingArgs
    examples: list[dict]
    eval_examples: list[dict] | None = None


@dataclass
class JobPlan:
    members: list[MemberPlan]
    # (finished member key → TrainingResult, failed member key → exception) → the job's
    # result and extra metrics for its version; raises when none is usable.
    choose: Callable[[Mapping, Mapping], tuple[object, dict]]

    @property
    def single(self) -> bool:
        return len(self.members) == 1


def plan_job(spec: JobSpec, args, rows: list[dict]) -> JobPlan:
    """The members one job trains as (see the module docstring)."""
    if not auto_lr.is_auto(spec.job.hyperparameters["learning_rate"]):
        return JobPlan([MemberPlan(spec.job.id, args, rows)], _sole_result)
    candidates = auto_lr.expand(spec.job.id, args)

    def choose(results: Mapping, failed: Mapping) -> tuple[object, dict]:
        choice = auto_lr.pick(candidates, results, failed)
        extra = {k: v for k, v in choice.metrics.items() if k.startswith("learning_rate")}
        return choice.result, extra

    return JobPlan([MemberPlan(key, member_args, rows) for key, member_args in candidates], choose)


def _sole_result(results: Mapping, failed: Mapping) -> tuple[object, dict]:
    (result,) = results.values()
    return result, {}
