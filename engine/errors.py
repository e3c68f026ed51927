"""Errors the engine raises for user mistakes. Each says what is wrong and what to do."""


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
