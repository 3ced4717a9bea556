"""`python -m compiler` runs the calicc CLI."""

from compiler.cli import main

main()
