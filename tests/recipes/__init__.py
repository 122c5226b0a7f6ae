"""The framework recipes of docs/guide.md, verbatim (tests/test_recipes.py checks both)."""
