"""Processing engines: each runs a RecDP op list (fit on train, apply to every split) on its own backend."""
