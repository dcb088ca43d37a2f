"""The foundation every part stands on: config, values, events, ledger, statistics, scope, git."""
