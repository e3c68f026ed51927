"""Errors the engine raises for user mistakes. Each says what is wrong and what to do."""

import errno
import sqlite3
from contextlib import contextmanager


class LabError(Exception):
    """A user-facing error. `hint` tells the user what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  {self.hint}" if self.hint else self.message


class InvalidInput(LabError):
    """The user gave something malformed (a bad duration, a broken site file): a usage error."""

    exit_code = 2


class Refused(LabError):
    """A well-formed command that is not allowed now (wrong state, lab exists...)."""

    exit_code = 1


class SiteFileError(InvalidInput):
    """A site file with problems; `problems` lists every one with its place."""

    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        body = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"site file {path} has {len(problems)} problem(s):\n{body}",
            "fix the file and run the command again; nothing was changed",
        )

    def __str__(self) -> str:
        return f"{self.message}\n  {self.hint}"


class Damaged(Refused):
    """Data that fails its checksum or does not make sense (a change-log record, a frame, a
    replica file): never applied. `file` names what is damaged when known."""

    def __init__(self, message: str, hint: str = "", file: str = ""):
        super().__init__(message, hint)
        self.file = file


class EnvironmentProblem(Refused):
    """The machine said no: no space left, a read-only or unwritable folder, a damaged vault."""


def environment_error(exc: BaseException, doing: str) -> LabError | None:
    """An OSError or SQLite error as a one-line message with what to do; None for anything else."""
    where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
    text = str(exc).lower()
    if isinstance(exc, OSError):
        code = exc.errno
        if code in (errno.ENOSPC, errno.EDQUOT):
            return EnvironmentProblem(f"{doing}: no space left on the device{where}",
                                      "free some space (or use a bigger file system) and run the command again")
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            what = "read-only file system" if code == errno.EROFS else "permission denied"
            return EnvironmentProblem(f"{doing}: {what}{where}",
                                      "make the folder writable (chmod -R u+w), or choose another folder")
        if code == errno.EFBIG:
            return EnvironmentProblem(f"{doing}: a file would be larger than this file system allows{where}",
                                      "use smaller disks, or a file system that allows larger files")
        if code in (errno.ENOENT, errno.ENOTDIR):
            return EnvironmentProblem(f"{doing}: no such file or folder{where}", "check the path")
        return EnvironmentProblem(f"{doing}: {exc.strerror or exc}{where}", "check the file system and try again")
    if isinstance(exc, sqlite3.Error):
        if "full" in text:
            return EnvironmentProblem(f"{doing}: no space left on the device for the vault (vault.db)",
                                      "free some space and run the command again")
        if "readonly" in text or "read-only" in text:
            return EnvironmentProblem(f"{doing}: the lab is read-only",
                                      "make it writable (chmod -R u+w LAB) to change it; reading it works as it is")
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            return EnvironmentProblem(f"{doing}: the vault (vault.db) is damaged ({exc})",
                                      "restore it from a backup, or replace the lab: srlab init --site FILE --force")
        if "locked" in text or "busy" in text:
            return EnvironmentProblem(f"{doing}: the vault is busy (another srlab holds it)", "try again")
        return EnvironmentProblem(f"{doing}: the vault failed: {exc}", "check the lab folder and try again")
    return None


@contextmanager
def environment(doing: str):
    """`with environment("advancing lab time"):` an OSError or SQLite error becomes an
    EnvironmentProblem saying what was being done and what to do."""
    try:
        yield
    except (OSError, sqlite3.Error) as e:
        raise environment_error(e, doing) from e
