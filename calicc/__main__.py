"""`python -m calicc` runs the calicc command line."""

from calicc.cli import main

main()
