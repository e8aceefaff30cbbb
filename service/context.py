"""What the routes share: the opened store, the answerer, the job runner, metrics and settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from indexes.errors import NotFound
from indexes.store import Store
from indexes.types import Collection
from service.answer import Answerer
from service.chat import ConversationStore
from service.feedback import AnswerLog
from service.auth import ANONYMOUS_ADMIN, Principal
from service.jobs import JobRunner
from service.keys import KeyStore
from service.metrics import Metrics
from service.settings import Settings


@dataclass
class ServiceContext:
    """Everything a request may need, built once by create_app."""

    settings: Settings
    store: Store
    answerer: Answerer
    jobs: JobRunner
    metrics: Metrics
    conversations: ConversationStore
    keys: KeyStore
    answers: AnswerLog
    ready: threading.Event = field(default_factory=threading.Event)
    startup_error: str | None = None

    def collection(self, name: str | None, principal: Principal) -> Collection:
        """A collection the caller may read (None: the default collection); 404 otherwise."""
        name = name or self.settings.default_collection
        principal.require_read(name)
        found = self.store.find_collection(name)
        if found is None and name == self.settings.default_collection and not self.ready.is_set():
            self.ready.wait(timeout=120)  # the warm-up creates the default collection once the model has loaded
            found = self.store.find_collection(name)
        if found is None:
            raise NotFound(f"collection {name!r} not found")
        return found


def get_context(request: Request) -> ServiceContext:
    """FastAPI dependency: the app's ServiceContext."""
    return request.app.state.docqa


def get_principal(request: Request) -> Principal:
    """FastAPI dependency: who is calling (an all-access admin while auth is off)."""
    authenticate = getattr(request.app.state, "authenticate", None)
    return authenticate(request) if authenticate else ANONYMOUS_ADMIN
