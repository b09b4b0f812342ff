"""``python -m sobolev …`` (and ``torchrun … -m sobolev …``): the ``sobolev`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="sobolev")
