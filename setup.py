"""Packaging that pyproject.toml cannot say: conf/ ships inside the package as `bluewhale.conf`.

conf/ stays at the top of the checkout (where the configs are edited); a wheel or a non-editable
`pip install .` maps it to `bluewhale/conf/`, which the app reads through Hydra's `pkg://bluewhale.conf`
search path. Everything else about the package is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["bluewhale*", "hydra_plugins*"]), "bluewhale.conf"],
    package_dir={"bluewhale.conf": "conf"},
    package_data={"bluewhale.conf": ["*.yaml", "**/*.yaml"]},
)
