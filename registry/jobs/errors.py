"""How a failed job is classified: the user's own input, or a system error (everything else)."""

from __future__ import annotations


class UserInputError(Exception):
    """The job's own input (dataset content, labels, hyperparameters, targets) cannot be
    trained on. Raise it exactly where the input is found wrong: the job fails with
    error_kind "user", its message shown as is, and it is never retried. Any other
    exception (a ValueError from a bug included) is a system error."""

    def __init__(self, message: str, *, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.code = code
