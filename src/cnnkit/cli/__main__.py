"""``python -m cnnkit.cli`` (and ``torchrun -m cnnkit.cli``): the command line."""

from cnnkit.cli import main

main()
