"""Chat adapters: platform events in as :class:`graph.events.Inbound`, replies out."""
