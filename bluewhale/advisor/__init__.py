"""The Smart Democratization Advisor: from the chosen model, data set and cluster, the SigOpt tuning recipe."""
