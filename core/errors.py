"""One exception family for problems a user can fix; the CLI and the GUI show its text as is."""


class RsSageError(ValueError):
    """Bad input or a broken installation, worded for the user (no traceback needed)."""


class KnowledgeBaseError(RsSageError):
    pass


class ModelError(RsSageError):
    pass
