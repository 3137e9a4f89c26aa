"""What a NAS-Bench-201 run checks before anything is written."""
from __future__ import annotations

from gnas.config import RunConfig
from gnas.errors import ConfigError
from gnas.tabular.lookup import query_seconds
from gnas.tabular.table import check_dataset, load_table, require_package


def check_run(cfg: RunConfig) -> None:
    """The extra is installed, the data set has a table, and the clock fits the first population.

    ``evolution.max_eval_seconds`` must cover the initial population at the cheapest
    cell's cost: below that no run could complete its generation 0.
    """
    check_dataset(cfg.data.dataset)
    require_package()
    limit, population = cfg.evolution.max_eval_seconds, cfg.evolution.population
    if not limit:
        return
    cheapest = query_seconds(float(load_table(cfg.data.dataset).train_time.min()))
    if limit < population * cheapest:
        raise ConfigError(f"--budget-seconds {limit:g} is too small for the initial population: "
                          f"{population} queries cost at least {population * cheapest:.0f} simulated "
                          f"seconds on {cfg.data.dataset}; give more seconds or a smaller --population.")
