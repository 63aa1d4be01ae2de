"""Experiments beside the runtime package: the one-shot GPU training job, the width-only and static baseline
networks, and the comparison of the library's levels with them. Not installed; run from the repository root
as ``python -m experiments.<module>`` (see README.md). ``dynofa_ros`` never imports this package."""
