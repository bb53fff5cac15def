"""TF-style run-time errors, shared by every layer. Build-time errors are ValueError/TypeError."""


class OpError(Exception):
    """An error while running a graph; `op_name` names the op when one is to blame."""

    def __init__(self, message: str, op_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.op_name = op_name


class InvalidArgumentError(OpError):
    """A value given to an op (a feed, an index) is not valid."""


class FailedPreconditionError(OpError):
    """The state a run needs is missing (an uninitialized variable)."""


class NotFoundError(OpError):
    """A named thing does not exist."""


class UnimplementedError(OpError):
    """Not supported by fuseflow."""
