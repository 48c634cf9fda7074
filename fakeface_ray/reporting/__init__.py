"""Reporting: metrics files, plots and the HTML page of a finished run."""
