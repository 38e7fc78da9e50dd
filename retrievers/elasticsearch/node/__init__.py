"""A local Elasticsearch node for tests and local use: `launcher` builds it from the Maven project in
`maven/` and runs it, `security` sets up its users, API keys and TLS. ``python -m
retrievers.elasticsearch.node start|stop|run|build``."""
