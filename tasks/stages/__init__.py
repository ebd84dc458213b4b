"""The stages: one module per step of the pipeline (load, split, scale, validate, train,
evaluate, report, compare), each a plain function over arrays and a thin Prefect task at the
bottom that reads its input artifacts, calls it and writes its outputs through the store."""
