"""``python -m vitamin_dense COMMAND ...``: the ``vitamin-dense`` command (see :mod:`vitamin_dense.commands`)."""
from .commands import console_main

if __name__ == '__main__':
    console_main()
