"""What a reader sees: the results page and its figures (:mod:`~neuroseg.report.results`,
used by ``90_figures``), the link inspector widget (:mod:`~neuroseg.report.inspector`), and
whether a step's numbers come back from scratch (:mod:`~neuroseg.report.verify`)."""
