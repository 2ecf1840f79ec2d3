"""tempdistill: temperature-controlled knowledge distillation into dense and spiking students.

The core (temperature, losses, schedules, information) imports neither snnTorch nor Norse;
concrete students live in the sibling package ``backends``.
"""

__version__ = "0.1.0"
