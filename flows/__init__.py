"""The flow definitions (``classification``, ``regression``, ``zoo``, ``search``, ``predict``): thin
wiring of the stage tasks in ``tasks/``. ``steps/`` holds the sequences they share; ``launch/``
the command line (``python -m flows``) and what it starts around a run."""
