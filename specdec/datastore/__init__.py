"""Retrieval datastores for REST drafting: a tokenized corpus with its suffix array, on disk.

Build with `specdec datastore build --model M --input FILE [FILE...] --out DIR`, or from token ids with
``build_datastore`` + ``save_datastore``; open with ``load_datastore``; query with ``retrieve``.
"""

from specdec.datastore.lookup import Retrieval, retrieve
from specdec.datastore.store import Datastore, build_datastore, check_vocabulary, load_datastore, save_datastore

__all__ = ["Datastore", "Retrieval", "build_datastore", "check_vocabulary", "load_datastore", "retrieve",
           "save_datastore"]
