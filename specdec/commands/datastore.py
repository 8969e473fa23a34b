"""`specdec datastore build`: tokenize a corpus with the target's tokenizer, index it, write it to a directory."""

from __future__ import annotations

import time

from specdec.errors import ModelFileError


def add_datastore_arguments(p) -> None:
    p.add_argument("action", choices=["build"], help="build: tokenize and index a corpus")
    p.add_argument("--model", default="smollm2-135m",
                   help="target whose tokenizer is used: registry name, .gguf file, Hugging Face directory or hub id "
                        "(default: smollm2-135m)")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help=".txt (read whole), .jsonl (string fields of each line) or .json files")
    p.add_argument("--out", required=True, help="output directory (created if missing)")


def run_datastore(args) -> int:
    from specdec.datastore import build_datastore, save_datastore
    from specdec.datastore.corpus import read_documents, tokenize_documents
    from specdec.models.load import load_model

    texts, inputs = read_documents(args.input)          # file errors before the (slower) model load
    target = load_model(args.model, quiet=True)
    eos = getattr(target.tokenizer, "eos_token_id", None)
    if eos is None:
        raise ModelFileError(f"model {args.model!r} has no EOS token to separate documents; accepted: a model "
                             f"whose tokenizer defines eos_token")
    t0 = time.perf_counter()
    ids = tokenize_documents(target.tokenizer, texts)
    t1 = time.perf_counter()
    store = build_datastore(ids, separator=eos, vocab_size=target.runtime.vocab_size, tokenizer=args.model,
                            inputs=inputs)
    t2 = time.perf_counter()
    size = save_datastore(store, args.out)
    print(f"datastore {args.out}: {len(store)} tokens from {store.header['documents']} documents in "
          f"{len(inputs)} file(s) | tokenized in {t1 - t0:.1f} s, indexed in {t2 - t1:.1f} s | "
          f"{size / 1e6:.1f} MB on disk")
    return 0
