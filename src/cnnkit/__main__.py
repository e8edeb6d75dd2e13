"""``python -m cnnkit``: the command line."""

from cnnkit.cli import main

main()
