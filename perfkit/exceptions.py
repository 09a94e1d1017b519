"""The perfkit exception tree.

Every error perfkit raises on purpose is a :class:`PerfkitError`. Input problems are also
``ValueError`` or ``TypeError`` so that code written against the standard library
conventions keeps working::

    PerfkitError
    ├── ValidationError (ValueError)          bad argument values at a public boundary
    │   ├── ShapeError                        lengths / dimensions that do not match
    │   ├── NonFiniteError                    NaN or inf where finite values are required
    │   ├── ProbabilityError                  scores outside [0, 1] or rows not summing to 1
    │   ├── LabelError                        labels / classes that do not match
    │   │   └── LabelTypeError (TypeError)    a label that is no scalar (dict, list, set ...)
    │   ├── EmptyBatchError                   a batch with no rows
    │   ├── UnknownTaskError                  a task name perfkit does not know
    │   └── ModelIdentityError                a batch / baseline of another task or label set
    ├── InputTypeError (TypeError)            arguments of the wrong type
    ├── ConfigError (ValueError)              a configuration key, type or value is wrong
    ├── StateError (ValueError)               states that cannot be merged or decoded
    ├── UnknownMetricError (KeyError)         a metric name that is not registered
    ├── StoreError                            the history store failed
    │   ├── SchemaVersionError                the store's schema is from another version
    │   └── RecordNotFoundError (KeyError)
    ├── DeliveryError                         an alert channel could not deliver
    ├── EngineError                           a compute engine failed or is missing
    └── ReportError                           running or exporting a report failed
        ├── ReportExecutionError              a notebook cell raised
        ├── ReportTimeoutError                a notebook cell timed out
        ├── ReportKernelError                 the kernel died
        └── ReportExportError                 HTML export failed
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryError",
    "EmptyBatchError",
    "EngineError",
    "InputTypeError",
    "LabelError",
    "LabelTypeError",
    "ModelIdentityError",
    "NonFiniteError",
    "PerfkitError",
    "ProbabilityError",
    "RecordNotFoundError",
    "ReportError",
    "ReportExecutionError",
    "ReportExportError",
    "ReportKernelError",
    "ReportTimeoutError",
    "SchemaVersionError",
    "ShapeError",
    "StateError",
    "StoreError",
    "UnknownMetricError",
    "UnknownTaskError",
    "ValidationError",
]


class PerfkitError(Exception):
    """Base class of every error perfkit raises on purpose."""


class ValidationError(PerfkitError, ValueError):
    """An argument value failed validation at a public entry point.

    Attributes
    ----------
    parameter : str or None
        The name of the offending parameter.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class ShapeError(ValidationError):
    """Array lengths or dimensions do not match."""


class NonFiniteError(ValidationError):
    """NaN or infinite values where finite values are required."""


class ProbabilityError(ValidationError):
    """Probabilities outside [0, 1] or rows that do not sum to one."""


class LabelError(ValidationError):
    """Labels or class columns do not match."""


class LabelTypeError(LabelError, TypeError):
    """A label that is not a scalar: a dict, list, set, array or other unhashable object.

    Labels must be ``str``, ``int``, ``float`` or ``bool`` (numpy scalars included). This is a
    :class:`LabelError` (so a ``ValueError``) and also a ``TypeError``, so code that caught
    the bare ``TypeError: unhashable type`` of earlier versions keeps working.
    """


class EmptyBatchError(ValidationError):
    """A batch with no rows."""


class UnknownTaskError(ValidationError):
    """A task name that perfkit does not know."""


class ModelIdentityError(ValidationError):
    """A batch or baseline that cannot belong to the model: another task, or a label set that
    cannot be the model's (the message names the model's task and labels). Nothing is written."""


class InputTypeError(PerfkitError, TypeError):
    """An argument has the wrong type."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class ConfigError(PerfkitError, ValueError):
    """A configuration key, type or value is wrong (the message names key and file)."""


class StateError(PerfkitError, ValueError):
    """Metric states that cannot be merged, encoded or decoded."""


class UnknownMetricError(PerfkitError, KeyError):
    """A metric name that is not registered (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class StoreError(PerfkitError):
    """The history store failed."""


class SchemaVersionError(StoreError):
    """The store was written by an incompatible perfkit version."""


class RecordNotFoundError(StoreError, KeyError):
    """A record that does not exist was requested."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DeliveryError(PerfkitError):
    """An alert channel could not deliver a message."""


class EngineError(PerfkitError):
    """A compute engine failed or is not installed."""


class ReportError(PerfkitError):
    """Running or exporting a report failed."""


class ReportExecutionError(ReportError):
    """A cell of the report notebook raised."""


class ReportTimeoutError(ReportError):
    """A cell of the report notebook timed out."""


class ReportKernelError(ReportError):
    """The report kernel died."""


class ReportExportError(ReportError):
    """The executed notebook could not be exported to HTML."""
