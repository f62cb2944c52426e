"""Export fixtures (owned by the export work): tiny exported artifacts for edge/bench tests."""
