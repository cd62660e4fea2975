"""One module per ``invlimits`` subcommand; see :mod:`empirics.cli`."""

__all__: list[str] = []  # the modules are loaded by name (empirics.cli.COMMANDS)
