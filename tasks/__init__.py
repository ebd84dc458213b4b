"""The pipeline's parts, lowest first: ``core``, ``store``, ``model``, ``checks``, ``stages``, ``search``,
``serving``. A part imports only parts below it (import-linter checks it: ``lint-imports``)."""
