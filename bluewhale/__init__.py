"""bluewhale: an end-to-end recommender-system kit for CPU clusters, as experiment-as-code on Hydra."""

__version__ = "0.1.0"
