"""Conformance evidence: requirement catalog -> pytest results -> HTML and JSON report (CONF-1).

Kept import-free on purpose: ``amiup.conformance.plugin`` is loaded into every pytest
process the runner starts, and must not drag Rich or Jinja2 in with it.
"""
