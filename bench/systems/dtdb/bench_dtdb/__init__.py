"""A minimal Django project with django-tasks-db, as a production site would run it."""
