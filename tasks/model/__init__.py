"""The model: the registry of the course's networks (name -> builder and defaults), the Keras
builders, the callbacks a training runs with, the batches it is fed, reproducible model files,
and the two private Keras names the project uses, checked at start-up. Keras only: no Prefect."""
