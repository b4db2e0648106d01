"""The five services: each module has ``NAME``, ``ENDPOINTS`` and ``routes(store)``."""

from . import blockchain, data, fraud, ml, nlp

SERVICES = {module.NAME: module for module in (ml, nlp, fraud, data, blockchain)}
