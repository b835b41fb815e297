"""Base class of every typed config section (pydantic models that forbid unknown keys).

Algorithms, tasks and benchmarks declare their own section as a subclass of :class:`Section` and register
it next to their builder (see :mod:`fastadapt.core.registry`). Validation failures are turned into one-line
:class:`~fastadapt.core.errors.ConfigError` messages that name the dotted key, by
:func:`fastadapt.experiment.config.validate_section`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, NaN/Inf are rejected, assignments are re-validated."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
        protected_namespaces=(),
    )
