"""The director's nodes, one module each (``async def verb_noun(state, runtime) -> dict``)."""
