"""remote-sep: separate sound sources with SAM Audio on a remote GPU box over SSH."""

__version__ = "0.1.0"
