"""The command line and the demo: thin layers over ``tempdistill.api``."""
