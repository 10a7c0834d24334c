"""The service: command line, composition root, chat adapters and card rendering."""
