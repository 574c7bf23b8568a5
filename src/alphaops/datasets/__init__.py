"""Training datasets: tabular rows and sequence windows built from features and labels."""

from alphaops.datasets.windows import SequenceWindows, segment_ids

__all__ = ["SequenceWindows", "segment_ids"]
