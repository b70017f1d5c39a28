"""The shipped example workflows (workflows/*.json): each converts, validates and runs."""
