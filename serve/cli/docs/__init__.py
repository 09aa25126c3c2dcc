"""The documentation against the code: references generated from it (``make docs``) and
the scanners the doc tests use to check what README.md and docs/ show."""
