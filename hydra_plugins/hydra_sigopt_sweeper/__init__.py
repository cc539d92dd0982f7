"""A Hydra sweeper driven by SigOpt: `hydra/sweeper=sigopt` (in-process lite driver, or a SigOpt server)."""
