"""How a run is launched: the command line's options and console, the embedded Prefect server,
where search trials run (process pool or Dask) and their workers' start-up, and serving flows
on a schedule. Above the flow definitions: it starts them, they never import it."""
