"""A minimal Django project with djtasks, as a production site would run it."""
