"""What a reader sees: the results page and its figures (:mod:`~neuroseg.report.results`,
used by ``90_figures``) and the link inspector widget (:mod:`~neuroseg.report.inspector`)."""
