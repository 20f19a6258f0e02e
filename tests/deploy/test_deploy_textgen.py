"""A text-generation service on 127.0.0.1 spoken to by the official ``openai`` client: chat and completions,
streaming and not, and two LoRA adapters of one base served by one replica (the ``model`` field picks)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow  # deploys a service (a supervisor and a replica process)

DOMAIN = [f"Python function number {i} returns the keys of a dictionary sorted by value {i % 5}." for i in range(16)]
QA = [{"instruction": f"What does function {i} return?", "response": f"Sorted keys {i % 3}."} for i in range(8)]


@pytest.fixture(scope="module")
def textgen(tmp_path_factory, tiny_lm_dir):
    from modelyard.client import Client
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.deploy import supervisor
    from modelyard.store.tokens import TokenStore
    from modelyard.train.tune import TUNE, TuneSpec

    root = tmp_path_factory.mktemp("textgen")
    home = root / "home"
    (root / "corpus.txt").write_text("\n\n".join(DOMAIN), encoding="utf-8")
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QA), encoding="utf-8")
    client = Client(home=home)
    client.models.register(str(tiny_lm_dir), "tiny", hf_task="text-generation")
    client.data.import_path(str(root / "corpus.txt"), "corpus", kind="text")
    client.data.import_path(str(root / "qa.jsonl"), "qa", kind="text")
    options = {"steps": 3, "batch_size": 4, "learning_rate": 2e-2, "max_length": 40}
    for index, (data, stage, name) in enumerate((("corpus@1", "pretrain", "tiny-docs"), ("qa@1", "sft", "tiny-qa"))):
        TUNE.run(TuneSpec(base="tiny@1", data=data, stage=stage, name=name, **options),
                 LocalJobContext(home=home, workdir=root / f"w{index}"))
    client.services.deploy("tiny@1", "chat", timeout=120)
    service = client.services.traffic("chat", {"tiny@1": 100, "tiny-docs@1": 0, "tiny-qa@1": 0}, timeout=120)
    _, token = TokenStore(client._workspace.engine).create("chatter", "viewer")
    yield {"client": client, "home": home, "url": f"http://127.0.0.1:{service['port']}/v1", "token": token}
    client.services.stop("chat")
    supervisor.stop(home)
    client.close()


def _openai(textgen, token=None):
    import openai

    return openai.OpenAI(base_url=textgen["url"], api_key=token or textgen["token"], max_retries=0, timeout=120)


def _expected(textgen, messages, adapter: str | None, max_tokens: int) -> str:
    """What the same model says in this process: the base, or the base with one adapter merged."""
    from modelyard.registry.ladder import chain_of, load_chain
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.causal_lm import generate

    registry = ModelRegistry(textgen["client"]._workspace)
    lm = load_chain(registry, chain_of(registry, registry.get_version(adapter or "tiny@1")))
    return generate(lm, lm.chat_prompt(messages), max_new_tokens=max_tokens)[0]


def test_openai_chat_completion_answers_as_the_model_does(textgen):
    messages = [{"role": "user", "content": "What does function 3 return?"}]
    with _openai(textgen) as client:
        reply = client.chat.completions.create(model="tiny@1", messages=messages, max_tokens=6, temperature=0)
    assert reply.model == "tiny@1" and reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == _expected(textgen, messages, None, 6)
    assert reply.usage.completion_tokens <= 6 and reply.usage.prompt_tokens > 0


def test_openai_streaming_chat_joins_to_the_same_text(textgen):
    messages = [{"role": "user", "content": "What does function 3 return?"}]
    with _openai(textgen) as client:
        whole = client.chat.completions.create(model="tiny-qa@1", messages=messages, max_tokens=6, temperature=0)
        chunks = list(client.chat.completions.create(model="tiny-qa@1", messages=messages, max_tokens=6,
                                                     temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content


def test_one_replica_serves_each_adapter_by_the_model_field(textgen):
    messages = [{"role": "user", "content": "Python function number 2"}]
    with _openai(textgen) as client:
        listed = {m.id for m in client.models.list()}
        replies = {adapter: client.chat.completions.create(model=adapter, messages=messages, max_tokens=5,
                                                           temperature=0) for adapter in ("tiny-docs@1", "tiny-qa@1")}
    assert listed == {"tiny@1", "tiny-docs@1", "tiny-qa@1"}
    for adapter, reply in replies.items():
        assert reply.model == adapter
        assert reply.choices[0].message.content == _expected(textgen, messages, adapter, 5)


def test_openai_completions_stream_and_errors(textgen):
    import openai

    hi = [{"role": "user", "content": "hi"}]
    with _openai(textgen) as client, _openai(textgen, token="wrong") as stranger:
        text = client.completions.create(model="tiny-docs", prompt="Python function", max_tokens=4, temperature=0)
        streamed = list(client.completions.create(model="tiny-docs", prompt="Python function", max_tokens=4,
                                                  temperature=0, stream=True))
        assert "".join(c.choices[0].text for c in streamed) == text.choices[0].text
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            client.chat.completions.create(model="gpt-4", messages=hi)
        with pytest.raises(openai.AuthenticationError):
            stranger.chat.completions.create(model="tiny@1", messages=hi)
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            client.chat.completions.create(model="tiny@1", messages=hi, max_tokens=0)
