"""descent: train models by gradient descent and see every step."""

__version__ = "0.1.0"
