"""A child process for the crash tests: runs one srlab command and SIGKILLs itself just before
its N-th durable file operation (os.fsync or os.replace) — a real kill -9 at a chosen point,
without the test having to sleep. N = 0 runs to the end and prints the count on stderr; a
negative N sends SIGTERM (a polite kill) instead, at the -N-th operation.

    python -m tests.crash_child N srlab-arguments...
"""

import os
import signal
import sys


def main() -> None:
    kill_at = int(sys.argv[1])
    count = [0]

    def counted(fn):
        def wrapper(*args, **kwargs):
            count[0] += 1
            if count[0] == abs(kill_at):
                os.kill(os.getpid(), signal.SIGKILL if kill_at > 0 else signal.SIGTERM)
            return fn(*args, **kwargs)

        return wrapper

    for name in ("fsync", "replace"):
        setattr(os, name, counted(getattr(os, name)))
    from tui.cli import main as srlab

    try:
        srlab(sys.argv[2:], prog_name="srlab")
    finally:
        print(f"crash_child: {count[0]} file operations", file=sys.stderr)


if __name__ == "__main__":
    main()
