"""The Stripe source: backfill from list endpoints, follow /v1/events, accept signed webhooks."""
