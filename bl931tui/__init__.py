"""bl931 front ends: the command line, the service loop, the demo and the Textual TUI."""
