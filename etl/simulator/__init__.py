"""A faithful local simulator of the NEPSE web API (synthetic data, real quirks and failures)."""

from etl.simulator.app import create_app
from etl.simulator.config import SimConfig, config_to_args
from etl.simulator.data import SimData
from etl.simulator.launcher import SimulatorProcess

__all__ = ["SimConfig", "SimData", "SimulatorProcess", "config_to_args", "create_app"]
