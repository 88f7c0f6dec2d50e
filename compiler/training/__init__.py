"""Training: the `training:` section of a spec, data, objectives, optimizers and the loop."""
