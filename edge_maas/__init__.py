"""edge_maas: model-as-a-service runtime for the edge."""

__version__ = "0.1.0"
