"""Keeping the OpenSearch index in step with PostgreSQL (``service``): the one place that
reads the source of truth and writes the derived index, so it sits above both."""
