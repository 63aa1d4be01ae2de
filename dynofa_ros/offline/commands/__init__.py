"""The ``dynofa`` sub-commands, one module each: ``add_arguments(parser)`` and ``run(args) -> int``.

A command reads its options, loads its inputs, calls the stage's algorithm in :mod:`dynofa_ros.offline` (plain
values and records in, a record out), writes the files and prints the summary. :mod:`.options` holds the options
several commands share and how they are loaded.
"""
