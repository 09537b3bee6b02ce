"""The built-in simulated Bifrost gateway (for the demo, the tests and the benchmarks). What
the other layers may use is ``__all__``."""

from batchlake.simulator.batch_accounting import CATALOG, GATEWAY_ONLY, prices_csv
from batchlake.simulator.file_store import FileStore
from batchlake.simulator.injected_faults import Fault
from batchlake.simulator.input_files import input_body
from batchlake.simulator.logs_routes import FATES, LOGS_MODES, LogsBook, logs_book
from batchlake.simulator.population import DROP, PROVIDERS, Plan, make_population, render
from batchlake.simulator.result_bodies import RESULTS_ENCODINGS
from batchlake.simulator.route_specs import parse_route_values
from batchlake.simulator.server import SimGateway

__all__ = ["CATALOG", "DROP", "FATES", "GATEWAY_ONLY", "LOGS_MODES", "PROVIDERS",
           "RESULTS_ENCODINGS", "Fault", "FileStore", "LogsBook", "Plan", "SimGateway",
           "input_body", "logs_book", "make_population", "parse_route_values", "prices_csv",
           "render"]
