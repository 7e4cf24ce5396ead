"""Ray Tune side: search spaces, the per-trial driver and the search itself."""
