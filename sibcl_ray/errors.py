"""User-facing errors.

Every error a user can cause by what they pass in (a flag, a file, a path) is a
:class:`SibclError` whose message is one line naming the bad value and what is
allowed. The command-line entry points print that line and exit with status 2,
instead of a traceback from deep inside Ray.
"""


class SibclError(Exception):
    """An error caused by user input; its message is the whole story, in one line."""


class ShardError(SibclError):
    """A Parquet shard is missing, truncated or does not match its manifest."""


class CheckpointError(SibclError):
    """A checkpoint folder has no readable state: missing, or cut short when its writer was stopped."""


class SearchSpaceError(SibclError):
    """A search-space file is malformed."""


class SearchInterrupted(Exception):
    """A search stopped (Ctrl-C) before every trial finished; the same command with --resume continues it."""


class ModelFolderError(SibclError):
    """A model folder is missing, foreign (not written by ``export_model``) or damaged."""


class InputError(SibclError, ValueError):
    """Inputs handed to a predictor have the wrong shape, non-finite values or values outside the problem's range."""
