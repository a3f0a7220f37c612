"""Platform tests: the reconciler against real OpenZFS 2.3 in a qemu guest (`make test-platform`).

Not collected by `make test` (pytest's testpaths is `tests`). The guest harness lives in
`platform_tests/harness`; the fixtures in `conftest.py`.
"""
