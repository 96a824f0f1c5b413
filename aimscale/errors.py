"""Exit codes of every `aimscale` command, and the one exception type for bad input.

- 0 (`EXIT_OK`): done.
- 1 (`EXIT_FAILURE`): a run-time failure (a run failed or diverged, a cluster command failed).
- 2 (`EXIT_BAD_INPUT`): bad input (arguments, config, spec, data, a damaged file), reported
  before anything is submitted or written.

Every error that is the user's to fix derives from `UserError` (`ConfigError`, `DataError`,
`ProbeError`, ...); `aimscale.cli.main` prints its message, without a traceback, and exits 2.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Bad input: the message names what is wrong and how to fix it (exit code 2)."""
