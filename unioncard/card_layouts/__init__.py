"""CR80 card face layouts as data, rendered to PDF and PNG (issue #5)."""
