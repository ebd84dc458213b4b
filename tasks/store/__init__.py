"""The store: datasets in memory and on disk, and where every artifact lives. The ``Frame`` and
its one Parquet layout, the content-addressed artifact store with its atomic writes and
quarantine, the typed lineage record beside each artifact, a stage's cache key and run, what the
Prefect UI shows of them, and ``verify``. It knows no model, check or stage."""
