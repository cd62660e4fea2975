"""One module per ``invlimits`` subcommand; see :mod:`empirics.cli`."""
