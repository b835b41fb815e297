"""Exceptions with a clear split between the user's bad input (exit code 2) and everything else.

Every message is meant to be printed as one line on stderr by the CLI: name the culprit (a config key, a
file, a task index) and what was expected.
"""

from __future__ import annotations


class FastAdaptError(Exception):
    """Base class of fastadapt's own errors (CLI exit code 1 unless a subclass says otherwise)."""

    exit_code: int = 1


class UserInputError(FastAdaptError):
    """Bad input from the user: config, data or checkpoint (CLI exit code 2)."""

    exit_code = 2


class ConfigError(UserInputError):
    """An unknown key, wrong type, out-of-range value or unknown name in a config or override."""


class DataError(UserInputError):
    """A dataset that is missing, truncated, wrongly laid out or fails its checksum."""


class CheckpointError(UserInputError):
    """A checkpoint that is corrupt, truncated, foreign or from an incompatible version."""


class NumericError(FastAdaptError):
    """A NaN or Inf appeared in a loss, gradient, reward or observation.

    ``quantity`` names what went bad and ``iteration`` when; the trainer stops, keeps the last good
    checkpoint and records the fault in metrics.jsonl.
    """

    def __init__(self, quantity: str, iteration: int | None = None, detail: str = "") -> None:
        self.quantity = quantity
        self.iteration = iteration
        self.detail = detail
        where = f" at iteration {iteration}" if iteration is not None else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(f"non-finite {quantity}{where}{extra}")


class EnvError(FastAdaptError):
    """An environment raised, returned a wrong shape or a non-finite observation (names task and env)."""
