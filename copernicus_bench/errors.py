"""User-facing errors: one clear line that names the file or option and the fix."""


class CbenchError(Exception):
    """An error the CLI reports as a single line (no traceback) with a non-zero exit code."""

    exit_code = 2


class NotApplicableError(CbenchError):
    """A model does not apply to a task (e.g. SoftCon on Sentinel-3); reported as "-" in tables."""


class WeightsNotFoundError(CbenchError):
    """A checkpoint is absent and could not be downloaded."""


class DataNotFoundError(CbenchError):
    """Task data is absent from the data root."""
