"""Grade deep-learning lab notebooks: run them in sandboxes, judge them on the host."""

__version__ = "0.1.0"
