"""``python -m sobolev_lab …`` (and ``torchrun … -m sobolev_lab …``): the ``sobolev`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="sobolev")
