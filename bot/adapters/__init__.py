"""Chat adapters: each turns platform events into :class:`graph.events.Inbound` and renders replies."""
