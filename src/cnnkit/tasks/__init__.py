"""Task-level pre- and post-processing shared by the networks: e.g. keypoint heatmap decoding."""
