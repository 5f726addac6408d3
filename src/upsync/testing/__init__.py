"""Test doubles that upsync's own tests, benchmarks and users' tests share.

``upsync.testing.stripe`` is a faithful local Stripe stand-in (an ASGI app keeping state in
memory) that the official ``stripe`` SDK cannot tell from the real API in test mode.
Submodules are imported on demand, so ``import upsync.testing`` stays cheap.
"""
