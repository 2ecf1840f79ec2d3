"""Sweeps: the same config over a grid of values, named variants and seeds, then a summary.

Each combination is an ordinary run (one HDF5 file); the summary is computed from the files,
grouped by run name (which encodes the variant and grid values as ``key=value``, never the
seed), as mean ± std over seeds of held-out accuracy, final teacher-student KL and the number
of epochs the student needed to reach 95% of its final accuracy.

One failing run never stops the others: its error is listed at the end. SIGINT/SIGTERM stops
the sweep: queued runs are dropped, running ones end their current epoch and record
themselves as ``interrupted``, and the summary covers what completed.

A sweep is resumable: the directory holds ``manifest.json`` (every planned run's name, seed
and config digest), and launching the same command again keeps the runs whose file is
``complete`` and runs the others again (``resume_plan``), so a crashed or stopped sweep of
thousands of runs loses only the runs in flight.
"""
