"""Keeping derived structures in step with the log: the OpenSearch index (``service``), the
one place that reads the source of truth and writes the derived index, so it sits above
both; and the hourly rollups' counters, folded from the deltas every write appends
(``rollups``)."""
