"""`learning_rate: "auto"`: train several candidate rates for one user, keep the best.

VeRA's quality depends strongly on the λ vectors' learning rate, and the best rate moves
with the dataset and the step budget (docs/benchmarks.md, "Learning rate auto"). A job
asking for "auto" becomes one pack member per candidate rate (`expand`), keys
`f"{job_key}#lr{i}"`; they share the base model's forward and backward, the rows, the
held-out split, the head init and the batch order (all derived from the job's seed), so
the rate is the only difference between them. When they have all finished, `pick`
keeps the one with the lowest held-out loss; only its vectors are stored, and the
version's metrics list every candidate's rate and held-out figures.

Torch-free: the API imports `AUTO` from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from registry.jobs.errors import UserInputError

if TYPE_CHECKING:
    from .train import TrainingArgs, TrainingResult

AUTO = "auto"
# Rates of the λ vectors tried for "auto": one decade around the measured optimum, the
# default fixed rate (TrainingArgs, 2e-2) among them, so "auto" never holds out worse than
# the default. Measured on MiniLM-L6 (q/v, r=256, 200 steps of 16 rows, Rotten Tomatoes
# snippets; docs/benchmarks.md): test accuracy 66.5 % at 1e-2, 77.9 % at 5e-2, 69.2 % at
# 1e-1, and at 2e-1 the model collapses to the majority class (59.7 %). The peak is narrow
# and moves with the data and the step budget, hence several candidates.
CANDIDATE_RATES: tuple[float, ...] = (1e-2, 2e-2, 5e-2, 1e-1)
# Held out from the job's rows when the job holds none out itself (eval_fraction=0):
# the pick needs rows no candidate trained on.
AUTO_EVAL_FRACTION = 0.1
PICKED_BY = "eval_loss"


class Choice(NamedTuple):
    key: str  # the winning member's key
    result: TrainingResult  # its vectors: the only ones stored
    metrics: dict[str, Any]  # the winner's metrics + learning_rate + every candidate


def is_auto(learning_rate: float | str) -> bool:
    return learning_rate == AUTO


def member_key(job_key: str, index: int) -> str:
    return f"{job_key}#lr{index}"


def expand(job_key: str, args: TrainingArgs) -> list[tuple[str, TrainingArgs]]:
    """One (member key, args) per candidate rate; only learning_rate differs between them
    (and eval_fraction is raised to AUTO_EVAL_FRACTION when the job held nothing out)."""
    eval_fraction = args.eval_fraction if args.eval_fraction > 0 else AUTO_EVAL_FRACTION
    return [
        (member_key(job_key, i), replace(args, learning_rate=rate, eval_fraction=eval_fraction))
        for i, rate in enumerate(CANDIDATE_RATES)
    ]


def _finite(value: Any) -> float | None:
    """JSON-safe figure: a diverged candidate's NaN or inf loss is stored as null."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def pick(
    candidates: Sequence[tuple[str, TrainingArgs]],
    results: Mapping[str, TrainingResult],
    failed: Mapping[str, BaseException] | None = None,
) -> Choice:
    """The finished candidate with the lowest held-out loss (ties: the lower rate).

    `candidates` is what `expand` returned; `results` the members that finished,
    `failed` those dropped for an error of their own (they are listed, never chosen).
    When none finished with a finite held-out loss: a candidate's UserInputError is
    raised again (the job's data is at fault), else ValueError (a system error).
    """
    failed = failed or {}
    rows, best = [], None
    for key, args in candidates:
        row: dict[str, Any] = {"learning_rate": args.learning_rate}
        if key in results:
            metrics = results[key].metrics
            for name in ("eval_loss", "eval_accuracy", "final_loss"):
                if name in metrics:
                    row[name] = _finite(metrics[name])
            loss = row.get("eval_loss")
            if loss is not None and (best is None or loss < best[0]):
                best = (loss, key, args.learning_rate)
        else:
            row["error"] = str(failed.get(key, "did not finish"))
        rows.append(row)
    if best is None:
        user_errors = [e for e in failed.values() if isinstance(e, UserInputError)]
        if user_errors:
            raise user_errors[0]  # the job's own data: every candidate fails on it alike
        raise ValueError(
            f"no learning-rate candidate finished with a held-out loss: {rows}; "
            "auto needs rows held out (eval_fraction > 0) and a run that does not diverge"
        )
    _, key, rate = best
    winner = results[key]
    metrics = {
        **winner.metrics,
        "learning_rate": rate,
        "learning_rate_auto": {"picked_by": PICKED_BY, "candidates": rows},
    }
    return Choice(key, winner, metrics)
