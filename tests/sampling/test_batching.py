from capcurriculum.sampling.batching import IGNORE, Item, encode_sft
from capcurriculum.sampling.world_data import WorldData


def test_labels_cover_exactly_the_response_and_its_end_token(world, processor):
    data = WorldData(*world)
    pools = data.pools("pretrain")
    items = [pools[m][0] for m in ("caption", "perc_image", "perc_caption", "text_math", "vis_math")]
    enc = encode_sft(processor, items)
    tok = processor.tokenizer
    for i, it in enumerate(items):
        labelled = enc["labels"][i][enc["labels"][i] != IGNORE]
        text = tok.decode(labelled, skip_special_tokens=False)
        expected_answer = it.caption if it.mode == "caption" else f"\\boxed{{{it.example['answer']}}}"
        assert text.endswith(tok.eos_token) and expected_answer in text
        # Nothing of the prompt leaks into the labels: the question is not supervised.
        if it.mode != "caption":
            assert it.example["question"] not in text
    assert enc["input_ids"].shape == enc["labels"].shape
    assert int((enc["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).sum()) == 3 * 9


def test_an_image_mode_without_an_image_is_refused():
    try:
        Item({"id": "x", "question": "q", "answer": "a"}, "perc_image")
    except ValueError as e:
        assert "needs an image" in str(e) and "x" in str(e)
    else:
        raise AssertionError("accepted an image question without an image")
