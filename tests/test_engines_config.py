"""Engines are chosen by config: `engine=` builds the named engine with its settings, nothing started yet."""

import pytest
from hydra.utils import instantiate

from bluewhale.engine.modin import ModinEngine
from bluewhale.engine.pandas import PandasEngine
from bluewhale.engine.spark import SparkEngine
from tests.conftest import compose_config


def test_engine_group_builds_each_engine_with_its_settings():
    assert isinstance(instantiate(compose_config().engine), PandasEngine)
    spark = instantiate(compose_config("engine=spark", "engine.master=spark://10.0.0.5:7077").engine)
    assert isinstance(spark, SparkEngine) and spark.master == "spark://10.0.0.5:7077"
    assert instantiate(compose_config("engine=spark").engine).master == "local[*]"
    tuned = instantiate(compose_config("engine=spark", "+engine.conf.spark.executor.memory=8g").engine)
    assert tuned.conf == {"spark.executor.memory": "8g"}
    modin = instantiate(compose_config("engine=modin", "engine.backend=ray", "engine.workers=3").engine)
    assert isinstance(modin, ModinEngine) and (modin.backend, modin.workers) == ("ray", 3)


def test_unknown_modin_backend_is_refused_naming_the_key():
    with pytest.raises(Exception, match=r"engine.backend: expected one of \('dask', 'ray'\), got 'spark'"):
        instantiate(compose_config("engine=modin", "engine.backend=spark").engine)
