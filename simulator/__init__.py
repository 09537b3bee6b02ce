"""The built-in simulated Bifrost gateway (for the demo, the tests and the benchmarks)."""

from batchlake.simulator.population import DROP, PROVIDERS, Plan, make_population, render
from batchlake.simulator.server import Fault, SimGateway

__all__ = ["DROP", "PROVIDERS", "Fault", "Plan", "SimGateway", "make_population", "render"]
