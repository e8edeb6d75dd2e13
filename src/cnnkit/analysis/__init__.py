"""The network analyzer: per-layer shapes, parameters, MACs/FLOPs, memory and receptive fields.

``analyze(model, input_size)`` runs one forward pass (on the meta device by default: shapes
only) and returns a :class:`Report`; ``empirical_receptive_field`` measures a receptive field
by back-propagation to check the analytic one. Conventions: docs/analyzer.md.
"""

from cnnkit.analysis.analyzer import analyze
from cnnkit.analysis.empirical import empirical_receptive_field
from cnnkit.analysis.report import LayerRow, Report

__all__ = ["LayerRow", "Report", "analyze", "empirical_receptive_field"]
