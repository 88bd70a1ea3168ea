"""attnlab: a laboratory for the training dynamics of shallow attention networks."""

__version__ = "0.1.0"
