"""Sources: where records come from. Stripe is the first provider."""
