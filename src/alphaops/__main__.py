"""The ``alphaops`` command's entry point (also ``python -m alphaops``).

It imports nothing heavy itself: the CLI is imported inside the ``try``, so Ctrl-C while the
CLI is still loading prints one line instead of a traceback. ``SIGTERM`` is treated like
Ctrl-C — running jobs stop, nothing half-done is published — and the exit code says which
signal ended the run: 130 for ``SIGINT`` (128 + 2), 143 for ``SIGTERM`` (128 + 15).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

__all__ = ["run"]

_INTERRUPTED = 130


_VERSION_ARGS = (["--version"], ["-V"], ["version"])


def run() -> None:
    """Run the CLI with ``sys.argv`` and exit with its code; never print a traceback.

    ``alphaops --version`` answers without importing the CLI (a script checking the
    version should not wait for pandas and the gates to load).
    """
    if sys.argv[1:] in _VERSION_ARGS:
        from alphaops._version import __version__

        sys.stdout.write(__version__ + "\n")
        sys.exit(0)
    received: list[int] = []

    def terminate(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        # Do whatever Ctrl-C does at this moment: raise KeyboardInterrupt, or cancel the
        # running training jobs (alphaops.training installs that while jobs run).
        on_interrupt = signal.getsignal(signal.SIGINT)
        if not callable(on_interrupt):
            raise KeyboardInterrupt
        on_interrupt(signal.SIGINT, frame)

    # An ignored SIGTERM (nohup, a supervisor's choice) stays ignored.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminate)
    try:
        from alphaops.cli import main

        code = main()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = _INTERRUPTED
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)
    if received and code == _INTERRUPTED:
        code = 128 + received[0]
    sys.exit(code)


if __name__ == "__main__":
    run()
