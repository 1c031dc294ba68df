"""One exception type for every failure a user can act on.

The CLI and the Pants plugin print these messages verbatim, so each one must name the model,
the file, what was expected and how to fix it; anything else escaping is a bug in mmepack.
"""


class MmepackError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def model_prefix(label: str) -> str:
    """How a message names the model it is about ("model 'x': "), or nothing without a name."""
    return f"model '{label}': " if label else ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C arrived during a step that changes something outside this machine (an upload);
    the message says what state it left and how to finish, since "interrupted" alone leaves the
    user guessing whether a permanent object is half there."""
