"""How a `sohogw` command takes a secret: from a file or standard input, never from its own argv.

Every local user can read every process's command line (`/proc/PID/cmdline`), so an option like
`--password S3cret` hands the secret to all of them while the command runs. Commands take `--…-file PATH`
instead (`-` is standard input), or prompt when a person runs them at a terminal.
"""

from collections.abc import Callable
from typing import TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def secret_file_option(name: str, what: str) -> Callable[[F], F]:
    """`--<name>-file PATH`: read `what` from the file's first line, `-` for standard input."""
    return click.option(
        f"--{name}-file",
        type=click.File("r"),
        default=None,
        help=f"Read {what} from this file's first line ('-': standard input); prompted when absent.",
    )


def read_secret(source: TextIO | None, prompt: str) -> str:
    """The secret from `source` (first line, newline dropped), or typed twice at a hidden prompt."""
    if source is None:
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True))
    return source.readline().rstrip("\r\n")
