"""dlc: learn deep learning for computer vision by doing, in the terminal."""

__version__ = "0.1.0"
