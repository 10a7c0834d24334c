"""External systems Solo OS acts on, behind one contract (see ``connectors.base``)."""
