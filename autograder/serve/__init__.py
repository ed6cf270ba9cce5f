"""`autograder serve`: the TAs' review app over the results store.

Server-rendered pages (FastAPI, Jinja2 templates with autoescaping; no front-end build): the cohort,
the review queue, one criterion's evidence with the decision form, each student's page as they will
see it, and the exports. `app.create_app` builds it; `auth` holds who may enter and how a form proves
it came from the app; `views` gathers what each page shows from the store.
"""
