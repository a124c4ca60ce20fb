"""Member expansion: the pack slots one job trains in, and how its result is chosen.

A plain job is one member keyed by its id. A job may become several members (e.g. one per
candidate learning rate, keys f"{job_id}#..."): each trains side by side in the pack, and
`choose` picks the job's result from theirs once all have finished (extra metrics for its
version with it). The pack runner calls nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from registry.jobs.errors import UserInputError
from workers.job_io import JobSpec


@dataclass
class MemberPlan:
    """One slot of the pack: a key, its args and rows (a job may train as several)."""

    key: str
    args: object  # registry.vera.train.TrainingArgs
    examples: list[dict]
    eval_examples: list[dict] | None = None


@dataclass
class JobPlan:
    members: list[MemberPlan]
    # Every member's TrainingResult → the job's result and extra metrics for its version.
    choose: Callable[[dict], tuple[object, dict]]


def plan_job(spec: JobSpec, args, rows: list[dict]) -> JobPlan:
    """Member expansion: the slots one job trains in and how its result is chosen from
    theirs. A plain job is one member keyed by its id."""
    if spec.job.hyperparameters["learning_rate"] == "auto":
        raise UserInputError(
            "learning_rate 'auto' is not supported by this worker; give a number",
            code="unsupported_hyperparameter",
        )
    return JobPlan([MemberPlan(spec.job.id, args, rows)], _sole_result)


def _sole_result(results: dict) -> tuple[object, dict]:
    (result,) = results.values()
    return result, {}
