"""Spiking-student machinery shared by every spiking backend (snnTorch, Norse).

Temperature reaches a spiking student through its output firing thresholds θ = θ0·T (see
``threshold``); the readout (θ0/N)·count turns spike counts into tempered logits (``readout``).
This package imports neither ``tempdistill`` nor ``backends``: a backend contributes only its
library's neuron layer (``network.NeuronLayer``).
"""
