"""Elasticsearch as a retriever: `retriever` (the `Retriever` over a cluster's index), `connection`
(URL, credentials and TLS from the environment; server errors as one-line `RetrieverError`s) and
`node/` (a local Elasticsearch node built with Maven, for tests and trying it out; not needed to
use a cluster). Nothing is imported here, so the node tooling loads without the retriever's
dependencies and the retriever without the node's."""
