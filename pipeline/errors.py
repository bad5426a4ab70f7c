"""One exception family for input the user can fix; stages print it as one line, no traceback."""


class CapcastError(ValueError):
    """A problem with the user's input or settings; the message says what to change."""


class FitError(CapcastError):
    """Too few points to fit, a target absent from the training rows, a fit that does not converge."""
