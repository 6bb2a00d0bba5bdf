"""The demo clinic: a fictional clinic around the seed case (`rehab demo load`, `rehab demo run`).

`loader.build_plans` makes the data as plain objects (deterministic in the seed and the demo's
"today"); `loader.load_demo` writes it; `runner` starts the web server, worker and beat.
This package's `__init__` stays light: the `rehab` CLI imports it for every command.
"""

DEFAULT_SEED = 20240610
