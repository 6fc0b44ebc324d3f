"""python -m dlcourse_tui.cli (also what torchrun runs)."""

from dlcourse_tui.cli.entry import main

main()
