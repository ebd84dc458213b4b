"""Core: what every other part may use and that uses none of them. Errors the user can fix
(exit 2) told apart from the program's, the typed training parameters and the course's defaults,
where raw files are looked for, memory settings, and the fault-injection switches the crash
tests use. Light: nothing here imports Prefect, Keras or Great Expectations."""
