"""The errors a user can fix. The CLI prints them as one line and exits 2; anything else is a bug."""
from corpora.errors import CorpusError
from corpora.extras import MissingExtra
from rag.config import ConfigError
from rag.models.lm import ModelError
from retrievers.base import RetrieverError
from triggers.base import TriggerConfigError


class UsageError(ValueError):
    """A bad argument that no lower layer owns (empty question, bad loop budget)."""


USER_ERRORS: tuple[type[Exception], ...] = (
    UsageError, CorpusError, RetrieverError, TriggerConfigError, ModelError, ConfigError, MissingExtra,
)
