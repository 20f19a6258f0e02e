"""Model monitoring (issue 18): capture a sample of each service's traffic into Parquet segments in the blob store
(:mod:`.capture`), judge it window by window against a reference for drift (:mod:`.drift`), data quality
(:mod:`.quality`) and performance, real and estimated (:mod:`.performance`), in reports (:mod:`.reports`), and
raise alerts on rules over any of it (:mod:`.alerts`). Rows live in :mod:`.store`."""
