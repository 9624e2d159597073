"""Local simulators of the provider wire protocols (OpenAI, Anthropic, Gemini, compat).

    async with SimServer(load_scenario("faults.yaml"), port=0) as sim:
        client = OpenAI(base_url=sim.base_url("openai"), api_key="sk-test")

Every answer carries `x-evtui-simulated: true`. `run_sim` is the blocking `evtui sim` entry.
"""

from evtui.sim.scenario import (
    FAULT_KINDS,
    PROVIDERS,
    FaultSpec,
    LatencySpec,
    LimitSpec,
    ProviderSpec,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from evtui.sim.server import SimServer, SimStats, run_sim

__all__ = [
    "FAULT_KINDS",
    "PROVIDERS",
    "FaultSpec",
    "LatencySpec",
    "LimitSpec",
    "ProviderSpec",
    "Scenario",
    "ScenarioError",
    "SimServer",
    "SimStats",
    "load_scenario",
    "parse_scenario",
    "run_sim",
]
