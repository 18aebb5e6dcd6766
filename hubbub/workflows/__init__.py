"""Workflows: multi-step job kinds with declared stages and steps.

A workflow is a job kind (``workflow.<key>``) declared with
:func:`~hubbub.workflows.declaration.workflow`; its stage and step
descriptors travel with the kind, and its runs are jobs. ``declaration.py``
declares and finds them, ``progress.py`` turns a run's step events into
per-step statuses, ``builtin.py`` holds hubbub's own, ``api.py`` the routes
under ``/api/v1/workflows``. See docs/workflows.md.
"""
