"""The turn engine, free of web frameworks: contexts, parent resolution, the responder, connection state."""
