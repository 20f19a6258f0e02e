"""Local Hugging Face folders (config + safetensors + tokenizer or image preprocessor) register as ONNX: converted by
the migration passes, verified by the compare engine, the tokenizer kept beside the model, the image preprocessor
turned into the version's preprocessing; nothing is ever downloaded."""

import json

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput, NotFound
from support import stop_supervisor

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # two exports and two comparisons (about 15 s)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "good", "bad", "movie", "film", "great", "awful",
         "plot", "was", "is"]


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PreTrainedTokenizerFast,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    root = tmp_path_factory.mktemp("hf")
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}))
    bert.save_pretrained(root / "bert")
    fast.save_pretrained(root / "bert")
    vit = ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=32, num_labels=3))
    vit.save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5, 0.5, 0.5],
                      image_std=[0.5, 0.5, 0.5]).save_pretrained(root / "vit")
    return {"bert": root / "bert", "vit": root / "vit", "bert_model": bert.eval(), "tokenizer": fast}


def test_a_text_classifier_registers_verified_with_its_tokenizer(client, hf_folders, tmp_path):
    import onnxruntime as ort
    import torch

    version = client.models.register(str(hf_folders["bert"]), "sentiment", hf_task="text-classification")
    assert version["source_format"] == "huggingface"
    assert set(version["files"]) >= {"model.onnx", "tokenizer/tokenizer.json"}
    assert [i["name"] for i in version["signature"]["inputs"]] == ["input_ids", "attention_mask"]
    assert version["signature"]["task"]["classes"] == ["neg", "pos"]
    source = version["lineage"]["source"]
    assert source["huggingface"]["compare"]["verdict"] == "pass"
    assert version["signature"]["preprocessing"]["text"]["inputs"] == ["input_ids", "attention_mask"]
    entry = client.models.download("sentiment@1", tmp_path / "m")
    feeds = {k: v.astype(np.int64) for k, v in
             hf_folders["tokenizer"](["the movie was good", "bad plot"], padding=True, return_tensors="np").items()}
    onnx_logits = ort.InferenceSession(str(entry)).run(["logits"], feeds)[0]
    with torch.no_grad():
        torch_logits = hf_folders["bert_model"](**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits
    np.testing.assert_allclose(onnx_logits, torch_logits.numpy(), atol=1e-5)


def test_an_image_classifier_gets_its_preprocessor_as_image_preprocessing(client, hf_folders):
    version = client.models.register(str(hf_folders["vit"]), "vit", hf_task="image-classification")
    pre = version["signature"]["preprocessing"]
    assert pre["size"] == [16, 16] and pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.5, 0.5, 0.5]
    assert version["signature"]["inputs"][0]["shape"][1:] == [3, 16, 16]


def test_bad_folders_are_refused_and_nothing_is_fetched(client, hf_folders, tmp_path):
    with pytest.raises(InvalidInput, match="--task"):
        client.models.register(str(hf_folders["bert"]), "x")
    with pytest.raises(InvalidInput, match="one of text-classification"):
        client.models.register(str(hf_folders["bert"]), "x", hf_task="translation")
    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((hf_folders["bert"] / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "modeling.Custom"}}))
    (remote / "model.safetensors").write_bytes((hf_folders["bert"] / "model.safetensors").read_bytes())
    with pytest.raises(InvalidInput, match="does not run remote code"):
        client.models.register(str(remote), "x", hf_task="feature-extraction")
    (remote / "model.safetensors").unlink()
    with pytest.raises((InvalidInput, NotFound), match="never downloads"):
        client.models.register(str(remote), "x", hf_task="feature-extraction")
    assert client.models.list()["items"] == []


def test_a_text_service_takes_raw_strings(hf_folders, tmp_path):
    import httpx
    import torch

    from modelyard.client import Client

    home = tmp_path / "home"
    with Client(home=home) as client:
        try:
            client.models.register(str(hf_folders["bert"]), "sentiment", hf_task="text-classification")
            service = client.services.deploy("sentiment@1", "sentiment", public=True, timeout=120)
            url = service["url"] + "/v1/predict"
            texts = ["the movie was good", "bad plot", "a great film is great"]
            answer = httpx.post(url, json={"inputs": {"text": texts}}, timeout=30)
            assert answer.status_code == 200, answer.text
            feeds = hf_folders["tokenizer"](texts, padding=True, return_tensors="pt")
            with torch.no_grad():
                expected = hf_folders["bert_model"](**feeds).logits.numpy()
            np.testing.assert_allclose(answer.json()["outputs"]["logits"], expected, atol=1e-5)
            assert [p["class"] for p in answer.json()["predictions"]] == \
                [["neg", "pos"][i] for i in expected.argmax(axis=1)]
            wrong = httpx.post(url, json={"inputs": {"text": [1, 2]}}, timeout=30)
            assert wrong.status_code == 400 and "list of strings" in wrong.json()["error"]["message"]
        finally:
            stop_supervisor(home)
