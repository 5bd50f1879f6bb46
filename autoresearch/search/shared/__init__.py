"""A study shared by several workers through one database: the ledger, the worker, its status."""
