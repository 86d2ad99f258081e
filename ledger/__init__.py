"""Pure ledger core (money, entries, hash chain, rules) and the SQLite store."""
