"""The experiment configs; installed as the package `bluewhale.conf` (see setup.py) so Hydra finds them
with `pkg://bluewhale.conf` wherever bluewhale is installed."""
