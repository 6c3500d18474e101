"""One exception family for problems a user can fix; the CLI and the GUI show its text as is."""


class RsSageError(ValueError):
    """Bad input or a broken installation, worded for the user (no traceback needed)."""


class KnowledgeBaseError(RsSageError):
    pass


class ModelError(RsSageError):
    pass


class Cancelled(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised when the caller's cancel callback says stop; outputs are removed."""
