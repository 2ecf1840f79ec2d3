"""Per-class T and a bounded spiking readout: argmax agreement of the best readout's currents.

For Gaussian teachers (2000 rows, K = 10, a confident and a less confident one) and T = 1 on
classes 0-4, T = 8 on classes 5-9, find the readout r ∈ [0, θ0] that minimises the KD loss, map
it back to the student's currents Ī = r·T and count how often their argmax is the teacher's:
with the old tempered distribution softmax(z / T_k), and with the centred one
softmax((z − mean z) / T_k) tempdistill uses (``tempdistill.analysis.shift``). Shared T = 1 and
T = 8 are the reference. Run: ``python benchmarks/per_class_shift.py`` (about half a minute).
"""

from __future__ import annotations

from tempdistill.analysis.shift import shift_figures


def main() -> None:
    figures = shift_figures(rows=2000)
    columns = ["teacher_accuracy", "theta0", "shared_T1", "shared_T8", "per_class_before", "per_class_after"]
    print("teacher".ljust(16) + "".join(c.rjust(18) for c in columns))
    for name, row in figures.items():
        print(name.ljust(16) + "".join(f"{row[c]:18.4f}" for c in columns))


if __name__ == "__main__":
    main()
