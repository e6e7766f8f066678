"""Propagation rules: one small class per rule (see ``base.Rule``)."""
