"""The read side of ClickHouse: analyst queries, the HTML report, their HTTP face and CLI."""
