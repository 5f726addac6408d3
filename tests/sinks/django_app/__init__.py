"""A minimal Django app for the Django integration tests: the guide's ``Subscription`` model."""
