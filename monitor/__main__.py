"""`python -m monitor` runs the command line."""

from monitor.cli import main

# Guarded: the parse pool's spawned workers import this module under another name.
if __name__ == "__main__":
    main(prog_name="monitor")
