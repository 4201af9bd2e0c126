"""``moco report``: the paper's analyses of a sweep directory as tables, plots and one HTML page."""

from moco_core.report.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
