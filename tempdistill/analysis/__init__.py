"""Reading many runs: comparisons, statistics over seeds (t-intervals, Holm, power), reports and figures."""
