"""The director: a LangGraph state machine from message to plan to receipts."""
