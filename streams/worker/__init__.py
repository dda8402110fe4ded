"""The Faust worker. `app.create_app` is the only composition root: it builds the runtime and
registers every agent, timer and view; `main.run_worker` runs it."""
