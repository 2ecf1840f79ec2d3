"""The loop and what it trains: the student interface, the distillation loop and its callbacks,
minibatch helpers, latency and memory estimates, stop requests."""
