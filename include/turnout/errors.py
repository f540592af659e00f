"""Errors raised by the engine. Each names what failed and where."""


class TurnoutError(Exception):
    """Base class for every error the engine raises on purpose."""


class SpecError(TurnoutError):
    """A migration spec is invalid; the message names the file, line and key."""


class PreflightError(TurnoutError):
    """A preflight check failed (unreachable endpoint, wrong table state, ...)."""


class StagingError(TurnoutError):
    """Staging (object storage) could not be read or written."""


class RecordError(TurnoutError):
    """One record cannot be handled (malformed, too large for the target, ...)."""

    def __init__(self, message: str, *, key=None, reason: str = "rejected"):
        super().__init__(message)
        self.key = key
        self.reason = reason


class DeadLetterError(TurnoutError):
    """Records went to the dead-letter store: the phase must turn red."""


class ValidationFailed(TurnoutError):
    """Source and target differ after rechecks."""


class LateWrites(TurnoutError):
    """The source changed after the approval (the write freeze): the cutover does not declare success."""
