//! End-to-end tests of memwatch: they build fixture workspaces and run the
//! real binaries against them. The tests themselves live in `tests/tests/`.
