"""The built-in simulated Bifrost gateway (for the demo, the tests and the benchmarks). What
the other layers may use is ``__all__``."""

from batchlake.simulator.file_store import FileStore
from batchlake.simulator.injected_faults import Fault
from batchlake.simulator.input_files import input_body
from batchlake.simulator.population import DROP, PROVIDERS, Plan, make_population, render
from batchlake.simulator.result_bodies import RESULTS_ENCODINGS
from batchlake.simulator.route_specs import parse_route_values
from batchlake.simulator.server import SimGateway

__all__ = ["DROP", "PROVIDERS", "RESULTS_ENCODINGS", "Fault", "FileStore", "Plan", "SimGateway",
           "input_body", "make_population", "parse_route_values", "render"]
