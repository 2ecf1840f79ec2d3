"""Reading many runs: comparisons, statistics over seeds (one bootstrap), reports and figures."""
