"""The pilot: caption a sample of a recording with every target, then project the full run.

`evtui pilot CONFIG RECORDING --frames N` samples windows (sample.py), runs them in compare
mode through the job engine (cli.py), measures each target (measure.py), scores caption
style and agreement without model weights (stats.py), projects cost, duration and the
binding rate limit for the whole recording and finds a cheaper weight mix (project.py),
and writes the report as text and as one self-contained HTML file (report.py, svg.py).
"""

from evtui.pilot.analysis import PilotAnalysis, Projection, analyse, project_full
from evtui.pilot.measure import LaneLimits, TargetMeasure, measure_targets
from evtui.pilot.project import Binding, Limit, Plan, Projector, TargetModel
from evtui.pilot.sample import Sample, WindowActivity, sample_windows, window_activity
from evtui.pilot.stats import Agreement, StyleStats, agreement, caption_style, classify

__all__ = [
    "Agreement",
    "Binding",
    "LaneLimits",
    "Limit",
    "PilotAnalysis",
    "Plan",
    "Projection",
    "Projector",
    "Sample",
    "StyleStats",
    "TargetMeasure",
    "TargetModel",
    "WindowActivity",
    "agreement",
    "analyse",
    "caption_style",
    "classify",
    "measure_targets",
    "project_full",
    "sample_windows",
    "window_activity",
]
