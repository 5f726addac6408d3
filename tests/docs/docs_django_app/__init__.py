"""The Django app the documentation's Django models are defined in (see ``django_setup``)."""
