"""The task records: tables, the code that writes task rows and API keys, and the schema migrations."""
