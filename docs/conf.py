"""Sphinx configuration: Markdown pages through MyST, the API from docstrings."""
import ngi

project = "ngi"
author = "ngi developers"
copyright = "ngi developers"
release = ngi.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
# ngi.testing.conformance is a pytest suite; the docs extra has no pytest.
autodoc_mock_imports = ["pytest"]

html_theme = "alabaster"
html_title = f"ngi {version}"

