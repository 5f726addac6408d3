"""The engine: one asyncio process running the API, the syncs and the managed consumers."""
