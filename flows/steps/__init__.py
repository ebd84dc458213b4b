"""The sequences of tasks the flows share: preparing the data, scoring and gating a trained
model, and halving's rung loop. Wiring only: no data logic."""
