"""A server with load-aware speculation: the cost surface is measured (or read from the cache) before the
server says it is ready, every step's budgets come from it, and answers are each request's solo output."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

from specdec.load_aware import LoadAwareBudget
from tests.server.helpers import MODEL, serve


def test_load_aware_server_plans_budgets_and_answers_as_each_request_alone(target, noisy, solo):
    prompts = ["a b c", "one two", "x y z w", "hello there"]
    with serve(target, {"noisy": noisy}, speculation="load-aware", max_num_seqs=4) as server:
        budget = server.runner.engine.budget
        assert isinstance(budget, LoadAwareBudget) and budget.surface.key
        client = OpenAI(base_url=server.base + "/v1", api_key="none")

        def ask(prompt):
            r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0,
                                          extra_body={"return_token_ids": True})
            return r.choices[0].token_ids
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(ask, prompts))
        assert got == [solo(p, 12, chat=False)[1] for p in prompts]
        assert len(budget.last) >= 1 and all(0 <= k <= budget.max_nodes for k in budget.last)
