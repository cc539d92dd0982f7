"""`bluewhale-report`: the runs of an experiment, or of one sweep, side by side on one HTML page (and a PNG
of it): their metrics, the parameters that differ, learning curves, and for a sweep the optimisation
history and the Pareto front. A sweep's page is logged to its parent run."""

from bluewhale.report.runs import ReportError, Selection, select
from bluewhale.report.write import write_report

__all__ = ["ReportError", "Selection", "select", "write_report"]
