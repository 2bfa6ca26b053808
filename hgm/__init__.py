"""hgm: the Huxley-Gödel Machine, a clade-guided search over self-rewriting coding agents."""

__version__ = "0.1.0"
