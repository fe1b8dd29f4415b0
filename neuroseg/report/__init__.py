"""What a reader sees: the results page and its figures (:mod:`~neuroseg.report.results`,
used by ``90_figures``), the link and track inspector widgets (:mod:`~neuroseg.report.inspector`,
:mod:`~neuroseg.report.track_inspector`), and
whether a step's numbers come back from scratch (:mod:`~neuroseg.report.verify`)."""
